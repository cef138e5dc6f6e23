#!/usr/bin/env bash
# Load on `zofhook serve` (release build, embedded store) with wrk: `GET /healthz` (the HTTP
# stack alone: the baseline), first-time deliveries (distinct pre-signed events), then
# duplicates (one event over and over) twice on one server: first while its worker is still
# working off the first-time deliveries' backlog, then idle (the backlog worked off). make bench
# keeps the output for BENCHMARKS.md.
#   infra/load.sh [seconds] [connections]
# Needs wrk (Debian package `wrk`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-10}
connections=${2:-50}
threads=2
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
cargo build --release -p zofhook --manifest-path "$root/Cargo.toml" >&2
work=$(mktemp -d)
serve=
trap 'stop; rm -rf "$work"' EXIT
secret=loadtest-secret
# A fresh server on an empty data dir, so one phase's backlog of work does not load the next.
start() {
  : >"$work/serve.out"
  ZOFHOOK_SECRET=$secret "$root/target/release/zofhook" --data-dir "$work/data-$1" serve --listen 127.0.0.1:0 >"$work/serve.out" 2>>"$work/serve.err" &
  serve=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
  url=$(sed -n 's/.*listening on //p' "$work/serve.out" | head -1)
}
stop() { [ -z "$serve" ] || { kill "$serve" 2>/dev/null; wait "$serve" 2>/dev/null || true; }; serve=; }
start 1
python3 - "$secret" 200000 >"$work/events.tsv" <<'PY'
import hashlib, hmac, json, sys
secret, n = sys.argv[1].encode(), int(sys.argv[2])
for i in range(n):
    body = json.dumps({"id": f"evt_load_{i}", "type": "run.completed", "created": "2026-05-20T12:00:00Z",
                       "data": {"object": {"id": f"run_{i}", "organization_id": "org_load", "run_id": f"run_{i}"}}},
                      separators=(",", ":"))
    print("sha256=" + hmac.new(secret, body.encode(), hashlib.sha256).hexdigest() + "\t" + body)
PY
head -1 "$work/events.tsv" >"$work/one.tsv"
echo "== healthz (baseline): ${seconds}s, $connections connections"
wrk -t$threads -c"$connections" -d"${seconds}s" --latency "${url%/webhook}/healthz"
echo "== first-time deliveries: ${seconds}s, $connections connections, $url"
ZOFHOOK_LOAD_FILE="$work/events.tsv" ZOFHOOK_LOAD_THREADS=$threads \
  wrk -t$threads -c"$connections" -d"${seconds}s" --latency -s "$root/infra/load.lua" "$url"
summary() { grep -ao 'verdict="[a-z_]*" status=[0-9]*' "$work/serve.err" | sort | uniq -c; : >"$work/serve.err"; }
echo "-- verdicts:"; summary
# Messages still queued (not yet processed) in the server's store.
backlog() {
  python3 -c 'import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(db.execute("SELECT COUNT(*) FROM messages WHERE dead = 0").fetchone()[0])' "$work/data-1/zofhook.db"
}
duplicates() {
  echo "== $1: ${seconds}s, $connections connections"
  echo "-- backlog before: $(backlog) queued"
  ZOFHOOK_LOAD_FILE="$work/one.tsv" ZOFHOOK_LOAD_THREADS=1 \
    wrk -t$threads -c"$connections" -d"${seconds}s" --latency -s "$root/infra/load.lua" "$url"
  echo "-- backlog after: $(backlog) queued"
  echo "-- verdicts:"; summary
}
# Record the one event (if the first-time deliveries did not), so every delivery below is a
# duplicate.
IFS=$'\t' read -r sig body <"$work/one.tsv"
curl -fsS -o /dev/null -H "Content-Type: application/json" -H "Zof-Signature: $sig" --data-binary "$body" "$url"
: >"$work/serve.err"
duplicates "duplicates during the backlog (one id)"
for _ in $(seq 1 600); do [ "$(backlog)" = 0 ] && break; sleep 1; done
duplicates "duplicates (one id)"
stop
