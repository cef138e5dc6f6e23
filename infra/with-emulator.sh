#!/usr/bin/env bash
# Runs a command with the AWS API emulator (moto server) on a free 127.0.0.1 port, and stops the
# emulator afterwards, whether the command passed or failed.
#   infra/with-emulator.sh cargo test --workspace
# The command sees ZOFHOOK_TEST_AWS_ENDPOINT=http://127.0.0.1:<port>.
# With ZOFHOOK_EMULATOR_TLS=1 the emulator serves HTTPS with a throwaway CA (make bench), and the
# command also sees SSL_CERT_FILE and AWS_CA_BUNDLE naming that CA.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/infra/venv.sh"
mkdir -p "$root/target"
log=$(mktemp "$root/target/moto-XXXXXX.log")
scheme=http
tls=()
if [ "${ZOFHOOK_EMULATOR_TLS:-0}" = 1 ]; then
  certs="$root/target/emulator-tls"
  "$root/.venv/bin/python" "$root/infra/bench/tls.py" "$certs"
  scheme=https
  tls=(-c "$certs/server.pem" -k "$certs/server.key")
  export SSL_CERT_FILE="$certs/ca.pem" AWS_CA_BUNDLE="$certs/ca.pem"
fi
# Port 0: the emulator binds a free port itself and prints it (" * Running on …:PORT"), so no
# port is picked here and handed over for another process to take in between.
"$root/.venv/bin/python" "$root/infra/moto-server.py" -H 127.0.0.1 -p 0 ${tls[@]+"${tls[@]}"} >"$log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; wait $moto 2>/dev/null || true' EXIT
port=
for _ in $(seq 1 300); do
  port=$(sed -n 's/.*Running on https\{0,1\}:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
  [ -z "$port" ] || break
  kill -0 $moto 2>/dev/null || { echo "moto_server exited; see $log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "moto_server printed no port within 30 s; see $log" >&2; exit 1; }
for _ in $(seq 1 100); do
  if "$root/.venv/bin/python" - "$scheme" "$port" <<'PY' 2>/dev/null; then break; fi
import os, ssl, sys, urllib.request
ca = os.environ.get("SSL_CERT_FILE") if sys.argv[1] == "https" else None
context = ssl.create_default_context(cafile=ca) if ca else None
urllib.request.urlopen(f"{sys.argv[1]}://127.0.0.1:{sys.argv[2]}/moto-api/", timeout=1, context=context)
PY
  kill -0 $moto 2>/dev/null || { echo "moto_server exited; see $log" >&2; exit 1; }
  sleep 0.2
done
echo "AWS API emulator (moto) on $scheme://127.0.0.1:$port, log $log" >&2
export ZOFHOOK_TEST_AWS_ENDPOINT="$scheme://127.0.0.1:$port"
status=0
"$@" || status=$?
# Keep the emulator's log only when something failed.
[ "$status" -ne 0 ] || rm -f "$log"
exit "$status"
