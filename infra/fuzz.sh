#!/usr/bin/env bash
# Runs each cargo-fuzz target for a bounded time on its kept corpus (fuzz/corpus/<target>).
#   infra/fuzz.sh [seconds per target] [--keep]
# make test runs a short smoke run whose new inputs go to a scratch dir; with --keep (make fuzz)
# new inputs are added to the kept corpus (minimize it afterwards with `cargo fuzz cmin`).
# cargo fuzz passes -Z flags, and this machine has only the stable toolchain: RUSTC_BOOTSTRAP=1
# lets stable accept them. Safe Rust needs no AddressSanitizer, so it builds with -s none.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-15}
keep=${2:-}
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cd "$root/fuzz"
export RUSTC_BOOTSTRAP=1
for target in signature_header envelope receive; do
  mkdir -p "corpus/$target"
  log=$(mktemp)
  scratch=$(mktemp -d)
  # libFuzzer writes new inputs to the first directory and only reads the others.
  if [ "$keep" = --keep ]; then dirs=("corpus/$target"); else dirs=("$scratch" "corpus/$target"); fi
  if ! cargo fuzz run -s none "$target" "${dirs[@]}" -- \
      -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz target $target FAILED (the crash input is in fuzz/artifacts/$target)" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  echo "fuzz $target: ${runs:-?} executions in ${seconds}s, no crash"
  rm -rf "$log" "$scratch"
done
