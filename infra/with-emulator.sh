#!/usr/bin/env bash
# Runs a command with the AWS API emulator (moto server) on a free 127.0.0.1 port, and stops the
# emulator afterwards, whether the command passed or failed.
#   infra/with-emulator.sh cargo test --workspace
# The command sees ZOFHOOK_TEST_AWS_ENDPOINT=http://127.0.0.1:<port>.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/infra/venv.sh"
port=$("$root/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log="$root/target/moto-$port.log"
mkdir -p "$root/target"
"$root/.venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; wait $moto 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if "$root/.venv/bin/python" - "$port" <<'PY' 2>/dev/null; then break; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=1)
PY
  kill -0 $moto 2>/dev/null || { echo "moto_server exited; see $log" >&2; exit 1; }
  sleep 0.2
done
echo "AWS API emulator (moto) on 127.0.0.1:$port, log $log" >&2
export ZOFHOOK_TEST_AWS_ENDPOINT="http://127.0.0.1:$port"
status=0
"$@" || status=$?
# Keep the emulator's log only when something failed.
[ "$status" -ne 0 ] || rm -f "$log"
exit "$status"
