#!/usr/bin/env bash
# make bench: every figure in BENCHMARKS.md, each with its baseline from this same run, then the
# generated block of BENCHMARKS.md rewritten from them (infra/bench/report.py).
#   infra/bench.sh [runs] [load-seconds]
# Needs what make test needs, plus wrk (installed with apt-get when missing) and network access
# to PyPI once (.venv-bench). Takes 15-30 minutes on 2 cores, most of it release builds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-20}
seconds=${2:-10}
out="$root/target/bench"
mkdir -p "$out"
cd "$root"

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk; }
  else sudo apt-get install -y -q wrk; fi
fi
infra/venv.sh
infra/venv.sh .venv-bench infra/requirements-bench.txt

echo "== release builds (each Lambda on its own, as cargo lambda builds it)" >&2
# One package per cargo invocation: building them together would unify core's features.
cargo build --release -p receiver
cp target/release/receiver "$out/receiver"
cargo build --release -p worker
cp target/release/worker "$out/worker"
# Baselines: the receiver with every core feature (what it was before the feature split), without
# the init-phase warm-up, and with aws-lc's CPU jitter entropy (which this workspace turns off).
cargo build --release -p receiver --features zofhook-core/default
cp target/release/receiver "$out/receiver-all-features"
cargo build --release -p receiver --features bench-no-warm-up
cp target/release/receiver "$out/receiver-no-warm-up"
AWS_LC_SYS_NO_JITTER_ENTROPY=0 CARGO_TARGET_DIR="$root/target/bench-jitter" \
  cargo build --release -p receiver
cp target/bench-jitter/release/receiver "$out/receiver-jitter"
cargo build -p e2e --bin coldstart

echo "== package sizes" >&2
.venv/bin/python infra/bench/sizes.py "$out" "$root/.venv-bench" "$root/infra/bench/peer" >"$out/sizes.json"

echo "== criterion: verification and the receive pipeline" >&2
cargo bench -p zofhook-core --bench verify --bench receive 2>&1 | tee "$out/criterion.log" >&2

echo "== cold start, $runs runs each, emulator over TLS" >&2
ZOFHOOK_EMULATOR_TLS=1 infra/with-emulator.sh target/debug/coldstart \
  --runs "$runs" --out "$out/coldstart.json" \
  --rust receiver="$out/receiver" \
  --rust receiver-no-warm-up="$out/receiver-no-warm-up" \
  --rust receiver-jitter="$out/receiver-jitter" \
  --python python-powertools="$root/.venv-bench/bin/python,$root/infra/bench/peer" >&2

echo "== load on zofhook serve" >&2
infra/load.sh "$seconds" 50 | tee "$out/load.log" >&2

.venv/bin/python infra/bench/report.py "$root" "$out"
