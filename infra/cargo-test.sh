#!/usr/bin/env bash
# Runs the workspace's tests and ends with one line that totals every test binary's results.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root/target"
log="$root/target/test.log"
# zofhook with `--aws` (its feature `aws`), as the end-to-end tests run it; then zofhook's own
# tests once more in its default build, the one without the AWS SDK.
{ cargo test --workspace --features zofhook/aws "$@" && cargo test -p zofhook --bins "$@"; } 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
