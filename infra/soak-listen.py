"""`zofhook --aws listen` for a long while against the AWS API emulator, while events arrive
(issue 25; BENCHMARKS.md, "listen, for hours"):

    infra/with-emulator.sh .venv/bin/python infra/soak-listen.py [minutes] [events per minute]

A table and a queue as the template makes them, `serve --aws` as the deployed receiver, `listen`
forwarding to a local handler (this script's own HTTP server); `zofhook send` delivers events at
the given rate. Every minute it prints listen's resident memory; at the end, the events sent,
the ones the handler got (each must arrive exactly once), and listen's own count of its reads,
turned into DynamoDB read units per hour. Exit 1 if an event was lost or doubled.
"""

import http.server
import json
import os
import subprocess
import sys
import threading
import time

import boto3

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
zofhook = os.path.join(target, "debug", "zofhook")
minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 30
per_minute = int(sys.argv[2]) if len(sys.argv) > 2 else 60
endpoint = os.environ["ZOFHOOK_TEST_AWS_ENDPOINT"]
env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_REGION="us-east-1",
           AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
           AWS_EC2_METADATA_DISABLED="true")
env.pop("ZOFHOOK_SECRET", None)

kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
table = f"soak-{os.getpid()}"
boto3.client("dynamodb", **kw).create_table(
    TableName=table, BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                          for n in ("id", "time_shard", "time_key")],
    KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    GlobalSecondaryIndexes=[{
        "IndexName": "by_time",
        "KeySchema": [{"AttributeName": "time_shard", "KeyType": "HASH"},
                      {"AttributeName": "time_key", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"}}])
queue = boto3.client("sqs", **kw).create_queue(QueueName=table)["QueueUrl"]

got = []
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        with lock:
            got.append(json.loads(body)["id"])
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=sink.serve_forever, daemon=True).start()
hook = f"http://127.0.0.1:{sink.server_address[1]}/hook"

deployed = os.path.join(target, f"soak-deployed-{os.getpid()}")
aws = ["--aws", "--table-name", table, "--queue-url", queue]
serve = subprocess.Popen([zofhook, "--data-dir", deployed, *aws, "serve", "--listen",
                          "127.0.0.1:0"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
url = None
for line in serve.stdout:
    if "listening on " in line:
        url = line.split("listening on ")[1].strip()
        break
threading.Thread(target=lambda: [None for _ in serve.stdout], daemon=True).start()
local = "whsec_c29hay1sb2NhbC1oYW5kbGVyLXNlY3JldA=="
listen = subprocess.Popen([zofhook, "--secret", local, *aws, "listen", "--forward-to", hook],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
ready = listen.stdout.readline()
assert ready.startswith("Forwarding events accepted from"), ready
lines = []
threading.Thread(target=lambda: lines.extend(listen.stdout), daemon=True).start()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


sent = []
started = time.time()
next_sample = started
samples = []
secret = open(os.path.join(deployed, "secret")).read().strip()
while time.time() - started < minutes * 60:
    if time.time() >= next_sample:
        samples.append((round((time.time() - started) / 60), rss_kb(listen.pid)))
        print(f"minute {samples[-1][0]:>3}: listen RSS {samples[-1][1] / 1024:.1f} MB, "
              f"sent {len(sent)}, forwarded {len(got)}", flush=True)
        next_sample += 60
    event_id = f"evt_soak_{len(sent):06d}"
    out = subprocess.run([zofhook, "--secret", secret, "send", "--url", url, "--id", event_id],
                         env=env, capture_output=True, text=True)
    if out.returncode == 0:
        sent.append(event_id)
    time.sleep(max(0.0, 60 / per_minute - 0.05))
time.sleep(5)
samples.append((round((time.time() - started) / 60), rss_kb(listen.pid)))
elapsed_h = (time.time() - started) / 3600
listen.send_signal(2)
_, err = listen.communicate(timeout=30)
serve.terminate()
serve.wait()
reads = [line for line in err.splitlines() if "read the ledger's time index" in line]
words = reads[-1].split() if reads else []
index_reads = int(words[words.index("index") + 1]) if reads else 0
record_reads = int(words[words.index("and") + 1]) if reads else 0
# On demand: a query that reads at most 4 KB costs 0.5 RRU (eventually consistent, the only
# kind an index serves), one per shard of the day; a strongly consistent GetItem of at most 4 KB
# costs 1 RRU.
rru = index_reads * 8 * 0.5 + record_reads * 1.0
doubled = sorted({i for i in got if got.count(i) > 1})
lost = sorted(set(sent) - set(got))
print(json.dumps({
    "minutes": round(elapsed_h * 60, 1),
    "sent": len(sent), "forwarded": len(got), "lost": lost[:10], "doubled": doubled[:10],
    "rss_mb_first": round(samples[0][1] / 1024, 1), "rss_mb_last": round(samples[-1][1] / 1024, 1),
    "rss_mb_max": round(max(s for _, s in samples) / 1024, 1),
    "index_reads": index_reads, "record_reads": record_reads,
    "rru_per_hour": round(rru / elapsed_h), "usd_per_hour": round(rru / elapsed_h * 0.125e-6, 5),
    "exit": listen.returncode}, indent=1))
sys.exit(1 if lost or doubled or listen.returncode != 0 else 0)
