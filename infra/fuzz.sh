#!/usr/bin/env bash
# Runs each cargo-fuzz target for a bounded time on its kept corpus (fuzz/corpus/<target>).
#   infra/fuzz.sh [seconds per target]     (make test: a short smoke run; RELIABILITY.md: long runs)
# cargo fuzz passes -Z flags, and this machine has only the stable toolchain: RUSTC_BOOTSTRAP=1
# lets stable accept them. Safe Rust needs no AddressSanitizer, so it builds with -s none.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-15}
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cd "$root/fuzz"
export RUSTC_BOOTSTRAP=1
for target in signature_header envelope receive; do
  mkdir -p "corpus/$target"
  log=$(mktemp)
  if ! cargo fuzz run -s none "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz target $target FAILED (the crash input is in fuzz/artifacts/$target)" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  echo "fuzz $target: ${runs:-?} executions in ${seconds}s, no crash; corpus $(ls "corpus/$target" | wc -l) inputs"
  rm -f "$log"
done
