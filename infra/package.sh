#!/usr/bin/env bash
# Builds the deployment packages with `sam build` (cargo lambda + Zig) for each architecture
# given, and prints each bootstrap's size, raw and zipped:
#   infra/package.sh [x86_64] [arm64]      (make package: both)
# x86_64 goes to .aws-sam/build and the Lambda tests run on its bootstraps. arm64 (the template's
# default Architecture) goes to .aws-sam/build-arm64; it cannot run on this x86_64 machine, so it
# is built and measured (make bench-check checks its size). Zig cross-compiles it; the Rust
# standard library for aarch64 comes from rustup, added here when missing. cargo-lambda comes
# prebuilt from PyPI into .venv-lint (its requirements), ahead of any other on PATH.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ $# -gt 0 ] || set -- x86_64
export PATH="$root/.venv-lint/bin:$HOME/.cargo/bin:$PATH"
infra/venv.sh .venv-lint infra/requirements-lint.txt
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
for arch in "$@"; do
  case $arch in
    x86_64) build=.aws-sam/build ;;
    arm64)
      build=.aws-sam/build-arm64
      rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
        || rustup target add aarch64-unknown-linux-gnu
      ;;
    *) echo "unknown architecture $arch (x86_64 or arm64)" >&2; exit 2 ;;
  esac
  echo "== sam build, Architecture=$arch, into $build"
  sam build --beta-features --build-dir "$build" --parameter-overrides "Architecture=$arch"
  for function in ReceiverFunction WorkerFunction; do
    bootstrap="$build/$function/bootstrap"
    read -r bytes zipped _ < <(python3 infra/lambda_zip.py "$bootstrap")
    echo "$function ($arch): bootstrap $bytes bytes, zipped $zipped bytes"
  done
done
for arch in "$@"; do
  if [ "$arch" = x86_64 ]; then
    # --workspace, as make test builds: the same feature set, so nothing is compiled a second time.
    ZOFHOOK_LAMBDA_BUILD_DIR="$root/.aws-sam/build" infra/with-emulator.sh cargo test --workspace --features zofhook/aws --test lambdas
  fi
done
