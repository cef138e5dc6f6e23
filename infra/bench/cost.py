"""The bill for one million accepted deliveries (make bench), from what this run measured:

- the functions' warm durations, CPU time and log bytes, and the records' DynamoDB sizes
  (coldstart.json: target/debug/coldstart);
- the calls a delivery makes (tests/tests/round_trips.rs counts them through a proxy): the
  receiver's conditional put and send (together), its `enqueued` mark; the worker's claim and
  outcome. The time index (`by_time`) holds keys only, so only the write that creates a record
  writes it (one index entry, under 1 KB: 1 WRU);
- the template's defaults (memory, batch size).

Lambda's CPU is proportional to memory (1,769 MB is one vCPU), so a duration at memory M is
modelled as the measured wait (wall minus CPU) plus the measured CPU time × max(1, 1769 / M)
(this machine's core counted as one vCPU). Lambda bills each invocation's duration rounded up to
the millisecond.

    python cost.py ROOT COLDSTART.json  ->  Markdown on stdout (report.py includes it)
"""

import json
import math
import pathlib
import sys

PRICE_DATE = "2025-11-01"
PRICES = {  # us-east-1 list prices on PRICE_DATE (USD)
    "lambda_gb_s_arm64": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "api_http": 1.00 / 1e6,  # HTTP API, first 300 M requests a month
    "api_rest": 3.50 / 1e6,  # REST API, first 333 M requests a month
    "api_url": 0.0,  # function URL: Lambda's own request charge only
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64 KB chunk
    "ddb_wru": 0.625 / 1e6,  # on-demand write request unit (1 KB)
    "ddb_rru": 0.125 / 1e6,  # on-demand read request unit (4 KB, strongly consistent)
    "secrets_call": 0.05 / 1e4,
    "logs_gb": 0.50,  # CloudWatch Logs ingestion (Standard)
}
# Lambda's own START, END and REPORT lines per invocation (bytes, as CloudWatch stores them).
PLATFORM_LOG_BYTES = 340
# Secrets Manager: one GetSecretValue per new execution environment; assumed one per 10,000
# deliveries (environments live for hours under steady traffic).
SECRET_CALLS_PER_DELIVERY = 1e-4
VCPU_MB = 1769
MEMORY_CHOICES = [128, 256, 512, 1024]

root, coldstart = pathlib.Path(sys.argv[1]), json.loads(pathlib.Path(sys.argv[2]).read_text())
med = lambda key: coldstart[key]["median"]


def template_default(name):
    lines = (root / "template.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip() == f"{name}:":
            for follow in lines[i + 1:i + 8]:
                if follow.strip().startswith("Default:"):
                    return int(follow.split(":", 1)[1].strip())
    sys.exit(f"cost.py: template.yaml has no default for {name}")


def duration_ms(wall, cpu, memory):
    wait = max(wall - cpu, 0.0)
    return math.ceil(wait + cpu * max(1.0, VCPU_MB / memory))


def lambda_cost(wall, cpu, memory, per_delivery):
    """GB-seconds and requests, per delivery, for invocations of `wall` ms each, `per_delivery`
    invocations per delivery."""
    ms = duration_ms(wall, cpu, memory)
    return (per_delivery * memory / 1024 * ms / 1000 * PRICES["lambda_gb_s_arm64"]
            + per_delivery * PRICES["lambda_request"]), ms


def wru(size_bytes):
    return math.ceil(size_bytes / 1024)


def cheapest(wall, cpu, rss, per_delivery):
    """The memory size with the lowest cost that leaves the peak RSS at most half of it."""
    fits = [m for m in MEMORY_CHOICES if rss <= m / 2] or [MEMORY_CHOICES[-1]]
    return min(fits, key=lambda m: lambda_cost(wall, cpu, m, per_delivery)[0])


def bill(who, receiver_memory, worker_memory):
    """Rows of (component, quantity per delivery, cost per million) for `who`."""
    batch = med("worker/batch_size")
    rows = []
    r_cost, r_ms = lambda_cost(med(f"{who}/warm_ms"), med(f"{who}/warm_cpu_ms"), receiver_memory, 1)
    rows.append((f"receiver Lambda ({receiver_memory} MB, {r_ms} ms billed)", "1 invocation", r_cost))
    w_cost, w_ms = lambda_cost(med("worker/batch_ms"), med("worker/batch_cpu_ms"), worker_memory, 1 / batch)
    rows.append((f"worker Lambda ({worker_memory} MB, {w_ms} ms billed per batch of {batch:.0f})",
                 f"{1 / batch:.2f} invocation", w_cost))
    # SQS: the send; the event source mapping's receive and batch delete (per batch).
    sqs = 1 + 2 / batch
    rows.append(("SQS requests (send; receive and delete per batch)", f"{sqs:.2f}", sqs * PRICES["sqs_request"]))
    record, final = med("receiver/item_bytes"), med("worker/item_bytes")
    if who == "receiver":
        # put, mark, claim (the received item), outcome (the final item); the put creates the
        # record and so writes the time index's entry.
        writes = wru(record) * 3 + wru(final) + 1
        label = (f"DynamoDB writes: put, mark, claim, outcome ({record:.0f} B → {final:.0f} B items) "
                 f"+ 1 time-index write")
    else:
        # Powertools: the INPROGRESS put and the COMPLETED update on its table (no index). The
        # worker half is ours, on a message whose record does not exist: its claim creates the
        # record (and its time-index entry), then the outcome.
        peer_item = med("python-powertools/item_bytes")
        writes = wru(peer_item) * 2 + wru(record) + 1 + wru(final)
        label = (f"DynamoDB writes: Powertools put and update ({peer_item:.0f} B items); "
                 f"our worker's claim, which creates the record, + 1 time-index write, and outcome")
    rows.append((label, f"{writes} WRU", writes * PRICES["ddb_wru"]))
    rows.append(("DynamoDB reads", "0 RRU", 0.0))
    rows.append(("Secrets Manager (GetSecretValue per new environment)", f"{SECRET_CALLS_PER_DELIVERY:g}",
                 SECRET_CALLS_PER_DELIVERY * PRICES["secrets_call"]))
    log_bytes = (med(f"{who}/warm_log_bytes") + PLATFORM_LOG_BYTES
                 + (med("worker/batch_log_bytes") + PLATFORM_LOG_BYTES) / batch)
    rows.append(("CloudWatch Logs ingestion", f"{log_bytes:.0f} B", log_bytes / 1e9 * PRICES["logs_gb"]))
    return rows


def table(who, title, receiver_memory, worker_memory):
    rows = bill(who, receiver_memory, worker_memory)
    out = [f"**{title}**", "", "| per accepted delivery | quantity | per 1 M deliveries |", "|---|---|---:|"]
    for component, quantity, cost in rows:
        out.append(f"| {component} | {quantity} | ${cost * 1e6:,.2f} |")
    base = sum(c for _, _, c in rows)
    totals = {door: base + PRICES[key] for door, key in
              [("HttpApi", "api_http"), ("RestApi", "api_rest"), ("FunctionUrl", "api_url")]}
    for door, key in [("HttpApi", "api_http"), ("RestApi", "api_rest"), ("FunctionUrl", "api_url")]:
        out.append(f"| API Gateway, `EndpointType={door}` | 1 request | ${PRICES[key] * 1e6:,.2f} |")
    out.append("| **total** | | " + " · ".join(f"{d} **${t * 1e6:,.2f}**" for d, t in totals.items()) + " |")
    return out, totals


receiver_memory, worker_memory = template_default("ReceiverMemorySize"), template_default("WorkerMemorySize")
ours, our_totals = table("receiver", "zof-webhooks", receiver_memory, worker_memory)
# The peer at the memory the same model finds cheapest for it.
peer_memory = cheapest(med("python-powertools/warm_ms"), med("python-powertools/warm_cpu_ms"),
                       med("python-powertools/rss_mib"), 1)
peer, peer_totals = table("python-powertools", "Python 3 + boto3 + Powertools idempotency (receiver, at the "
                          "memory the model finds cheapest for it; the worker half is ours: Powertools has "
                          "no worker to compare)", peer_memory, worker_memory)

choice = ["| memory | receiver: billed ms | receiver $/1 M | worker: billed ms per batch | worker $/1 M |",
          "|---:|---:|---:|---:|---:|"]
batch = med("worker/batch_size")
for m in MEMORY_CHOICES:
    rc, rms = lambda_cost(med("receiver/warm_ms"), med("receiver/warm_cpu_ms"), m, 1)
    wc, wms = lambda_cost(med("worker/batch_ms"), med("worker/batch_cpu_ms"), m, 1 / batch)
    choice.append(f"| {m} MB | {rms} | ${rc * 1e6:,.2f} | {wms} | ${wc * 1e6:,.2f} |")
best_r = cheapest(med("receiver/warm_ms"), med("receiver/warm_cpu_ms"), med("receiver/rss_mib"), 1)
best_w = cheapest(med("worker/batch_ms"), med("worker/batch_cpu_ms"), med("worker/rss_mib"), 1 / batch)

print("\n".join([
    f"Prices: us-east-1 list prices of {PRICE_DATE}, arm64 Lambda, on-demand DynamoDB, standard "
    f"SQS. Measured in this run: warm durations and CPU time (receiver {med('receiver/warm_ms'):.1f} ms "
    f"wall, {med('receiver/warm_cpu_ms'):.2f} ms CPU per delivery; worker {med('worker/batch_ms'):.1f} ms "
    f"wall, {med('worker/batch_cpu_ms'):.2f} ms CPU per batch), log bytes, item sizes. The emulator "
    f"(one Python process, over TLS) answers a call in about {med('tls_second_ms'):.0f} ms, slower than "
    f"DynamoDB or SQS from inside a region, so the Lambda durations here are upper bounds, for both "
    f"contenders alike. The peer logs nothing of its own: its log bytes are Lambda's lines. Assumed: "
    f"{PLATFORM_LOG_BYTES} B of Lambda platform log lines per invocation; one Secrets Manager call per "
    f"{1 / SECRET_CALLS_PER_DELIVERY:,.0f} deliveries. Not per delivery, so not here: $0.40 a month per "
    f"secret, the alarms and the dashboard's custom metrics, the SQS pollers' empty receives.", "",
    *ours, "", *peer, "",
    f"Per million accepted deliveries, zof-webhooks costs **{our_totals['HttpApi'] / peer_totals['HttpApi']:.2f}×** "
    f"the peer behind an HTTP API ({our_totals['RestApi'] / peer_totals['RestApi']:.2f}× behind a REST API, "
    f"{our_totals['FunctionUrl'] / peer_totals['FunctionUrl']:.2f}× behind a function URL). Target: at most "
    f"0.85× behind each: "
    f"{'met' if all(our_totals[d] <= 0.85 * peer_totals[d] for d in our_totals) else '**not met**'}.", "",
    "Memory (`ReceiverMemorySize`, `WorkerMemorySize`): the same model at each size; peak RSS "
    f"{med('receiver/rss_mib'):.0f} MiB (receiver), {med('worker/rss_mib'):.0f} MiB (worker), and a "
    "size must leave half of itself free:", "",
    *choice, "",
    f"Cheapest: receiver {best_r} MB, worker {best_w} MB; the template's defaults: "
    f"receiver {receiver_memory} MB, worker {worker_memory} MB: "
    f"{'met' if (best_r, best_w) == (receiver_memory, worker_memory) else '**not met**'}.",
]))
