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

echo "== release builds (each Lambda on its own, with cargo lambda's settings)" >&2
# One package per cargo invocation: building them together would unify core's features. The
# settings are the ones `sam build` applies (Cargo.toml's [workspace.metadata.lambda.build]);
# each variant has its own target dir, so a second run rebuilds nothing.
variant() { # NAME TARGET_DIR PACKAGE [cargo args...] -- [config overrides...]
  local name=$1 dir=$2 package=$3; shift 3
  local args=() overrides=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  overrides=("$@")
  mapfile -t cfg < <(infra/lambda-config.py "${overrides[@]}")
  CARGO_TARGET_DIR="$root/$dir" cargo build --release -p "$package" "${args[@]}" "${cfg[@]}" >&2
  cp "$root/$dir/release/$package" "$out/$name"
}
variant receiver target/bench-lambda receiver
variant worker target/bench-lambda worker
# Baselines: the receiver without the init-phase warm-up; both functions at opt-level 3 (what
# was shipped before the size work).
variant receiver-no-warm-up target/bench-lambda receiver --features bench-no-warm-up
variant receiver-o3 target/variant-o3 receiver -- profile.release.opt-level=3
variant worker-o3 target/variant-o3 worker -- profile.release.opt-level=3
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
  --rust receiver-o3="$out/receiver-o3" \
  --python python-powertools="$root/.venv-bench/bin/python,$root/infra/bench/peer" \
  --worker "$out/worker" >&2

echo "== load on zofhook serve" >&2
infra/load.sh "$seconds" 50 | tee "$out/load.log" >&2

echo "== cost of a million deliveries" >&2
.venv/bin/python infra/bench/cost.py "$root" "$out/coldstart.json" >"$out/cost.md"

.venv/bin/python infra/bench/report.py "$root" "$out"
