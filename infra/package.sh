#!/usr/bin/env bash
# Builds the deployment packages with `sam build` (cargo lambda + Zig) and runs the Lambda tests
# on the packaged bootstraps. cargo-lambda comes prebuilt from PyPI into .venv-lint (its
# requirements), ahead of any other on PATH.   infra/package.sh [x86_64|arm64]   (arm64 needs `rustup target add aarch64-unknown-linux-gnu`)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
arch=${1:-x86_64}
export PATH="$root/.venv-lint/bin:$HOME/.cargo/bin:$PATH"
infra/venv.sh .venv-lint infra/requirements-lint.txt
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
sam build --beta-features --parameter-overrides "Architecture=$arch"
for function in ReceiverFunction WorkerFunction; do
  bootstrap=".aws-sam/build/$function/bootstrap"
  zipped=$(python3 -c 'import io, sys, zipfile
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.write(sys.argv[1], "bootstrap")
print(len(buf.getvalue()))' "$bootstrap")
  echo "$function: bootstrap $(stat -c %s "$bootstrap") bytes, zipped $zipped bytes"
done
if [ "$arch" = x86_64 ]; then
  # --workspace, as make test builds: the same feature set, so nothing is compiled a second time.
  ZOFHOOK_LAMBDA_BUILD_DIR="$root/.aws-sam/build" infra/with-emulator.sh cargo test --workspace --features zofhook/aws --test lambdas
fi
