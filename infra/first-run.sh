#!/usr/bin/env bash
# The first five minutes (make first-run): a fresh clone of REV (default HEAD) in a temp dir,
# an empty target dir, and the README's first command as written, timed until it prints
# `listening`. The crates.io downloads are not counted when ~/.cargo/registry already has them
# (run `CARGO_HOME=$(mktemp -d) infra/first-run.sh` to count them too).
#   infra/first-run.sh [REV]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rev=${1:-HEAD}
work=$(mktemp -d)
pid=
# The command runs in its own process group (cargo, then zofhook): the group is stopped at the end.
trap '[ -z "$pid" ] || kill -- -"$pid" 2>/dev/null; rm -rf "$work"' EXIT
git clone -q "$root" "$work/zof"
git -C "$work/zof" checkout -q "$rev"
# The README's first command: the first line of its first sh block, before any comment.
command=$(awk '/^```sh/ { getline; print; exit }' "$work/zof/README.md" | sed 's/ *#.*$//')
cd "$work/zof"
started=$(date +%s.%N)
setsid bash -c "$command" >"$work/log" 2>&1 &
pid=$!
until grep -q "listening" "$work/log" 2>/dev/null; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "first-run: \`$command\` ended before it was listening:" >&2
    tail -20 "$work/log" >&2
    exit 1
  fi
  sleep 0.5
done
ended=$(date +%s.%N)
echo "first-run: $(git rev-parse --short HEAD): \`$command\` printed listening after $(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.1f", b - a }') s"
