#!/usr/bin/env python3
"""What the deployed stack sustains: a day of bursty Zof traffic through a model of its parts
(docs/capacity.md has the table this backs, and this program's output).

    python3 infra/capacity.py            # the stack at template.yaml's defaults, then raised
    python3 infra/capacity.py --json     # the same figures as JSON

One-second steps over a day. Each part is a limit, taken from template.yaml's defaults or from
AWS's published quotas (docs/capacity.md names each source):
- the front door: API Gateway's stage throttling, a token bucket (ThrottlingRateLimit per second,
  ThrottlingBurstLimit deep); a refused delivery is a 429, which Zof retries;
- the receiver Lambda: concurrency = deliveries per second x its duration, against the account's
  concurrency quota (the worker's share taken out);
- DynamoDB on demand: the table takes what it has served at its peak, doubled, at once (at least
  4,000 write units a second on a new table); each accepted delivery writes WRU_PER_EVENT units
  (docs/capacity.md), 1 of them to the time index, whose 8 partitions of the day take 1,000
  writes a second each. A delivery over either limit is throttled: 503, which Zof retries;
- SQS: no limit that matters here (a standard queue takes nearly any rate of sends);
- the worker: WorkerMaximumConcurrency invocations of WorkerBatchSize messages, each batch taking
  BATCH_SECONDS (the messages of a batch are handled side by side; the time is the slowest
  message's downstream calls: the Zof API, the notify URL). The queue's oldest message age is
  what the QueueAgeAlarmSeconds alarm watches;
- Zof's API: one GET per processed event when ZofApiBaseUrl is set; its rate is reported, as Zof
  publishes no limit we could check it against.

Zof's retries are assumed: 10 s after a refused delivery, then doubling, 8 attempts in all (Zof
documents a retry but not its schedule). No delivery is ever dropped by the model: what Zof gives
up on is counted as lost, and the run says so.
"""

import json
import math
import pathlib
import sys
from collections import deque

ROOT = pathlib.Path(__file__).resolve().parent.parent
DAY = 86_400

# Measured and published figures (docs/capacity.md, "Sources").
RECEIVER_SECONDS = 0.03  # a warm delivery in a region: put and send side by side, then the mark
BATCH_SECONDS = 0.6  # a batch of messages with a Zof API GET and a notify POST each (~250 ms apiece)
# The ledger's layouts: by_time (now), and by_day (before), whose one partition a day took the
# 4 writes of each event (it projected `status`).
LAYOUTS = {
    "by_time": dict(wru=5, index_writes=1, shards=8),  # put, index, mark, claim, outcome
    "by_day": dict(wru=8, index_writes=4, shards=1),
}
ON_DEMAND_WINDOW = 1_800  # DynamoDB on demand doubles a peak it saw this long ago, at once
PARTITION_WRITES = 1_000  # writes a second one DynamoDB partition takes
ON_DEMAND_START_WRU = 4_000  # a new on-demand table, before any peak
ACCOUNT_CONCURRENCY = 1_000  # Lambda concurrent executions, default account quota
ZOF_RETRY_FIRST, ZOF_RETRY_ATTEMPTS = 10, 8


def template_defaults():
    """The template's Default of each parameter that has one."""
    lines = (ROOT / "template.yaml").read_text().splitlines()
    defaults, name = {}, None
    for line in lines:
        if line == "Resources:" or line.startswith("Conditions:"):
            break
        if line.startswith("  ") and not line.startswith("   ") and line.strip().endswith(":"):
            name = line.strip()[:-1]
        elif name and line.strip().startswith("Default:"):
            value = line.split(":", 1)[1].strip().strip('"')
            defaults[name] = int(value) if value.isdigit() else value
    return defaults


# A day of Zof traffic: a quiet base of 1 run completing a second, a nightly suite (20,000 runs
# in 2 minutes at 02:00) and a release (50,000 runs in 10 minutes at 09:00).
A_DAY = [(2 * 3600, 20_000, 120), (9 * 3600, 50_000, 600)]
# The same day after a merger: the release is 600,000 runs in 10 minutes (1,000 a second).
A_BIG_DAY = [(2 * 3600, 20_000, 120), (9 * 3600, 600_000, 600)]


def traffic(bursts):
    """New deliveries per second over the day."""
    rate = [1.0] * DAY
    for start, count, seconds in bursts:
        for t in range(start, start + seconds):
            rate[t] += count / seconds
    return rate


def simulate(p, bursts, layout):
    wru_per_event = LAYOUTS[layout]["wru"]
    index_writes = LAYOUTS[layout]["index_writes"]
    shards = LAYOUTS[layout]["shards"]
    rate_limit, burst = p["ThrottlingRateLimit"], p["ThrottlingBurstLimit"]
    worker_rate = p["WorkerMaximumConcurrency"] * p["WorkerBatchSize"] / BATCH_SECONDS
    receiver_quota = ACCOUNT_CONCURRENCY - p["WorkerMaximumConcurrency"]
    tokens = float(burst)
    retries = {}  # second -> [(attempt, first_seen)] due then
    queue = deque()  # [enqueued_at, count]
    queued = 0.0
    used_at = deque()  # (second, WRU used), the last ON_DEMAND_WINDOW seconds
    old_peak = 0.0
    stats = dict(events=0, deliveries=0, accepted=0, throttled_api=0, throttled_table=0,
                 throttled_index=0, throttled_concurrency=0, lost=0, max_delay=0, max_queue=0,
                 max_queue_age=0, peak_receiver_concurrency=0, peak_wru=0,
                 peak_index_partition=0, peak_zof_api=0, processed=0, drained_at=None)
    carry = 0.0
    arrivals = traffic(bursts)
    t = 0
    while t < DAY or queued > 0.5 or retries:
        if t > 3 * DAY:
            break
        # New deliveries (whole ones; the fractions carry over) and the retries due now.
        carry += arrivals[t] if t < DAY else 0.0
        new = int(carry)
        carry -= new
        batch = [(1, t)] * new + retries.pop(t, [])
        stats["events"] += new
        stats["deliveries"] += len(batch)
        tokens = min(float(burst), tokens + rate_limit)
        # What the table and the index take this second. On demand, a table serves at once up to
        # twice the peak it served at least half an hour ago (4,000 WRU/s on a new table).
        while used_at and used_at[0][0] <= t - ON_DEMAND_WINDOW:
            old_peak = max(old_peak, used_at.popleft()[1])
        wru_left = max(float(ON_DEMAND_START_WRU), 2 * old_peak)
        # The day's index partitions, each taking its share of the ids (evenly, by the hash).
        index_left = shards * PARTITION_WRITES
        concurrency_left = receiver_quota / RECEIVER_SECONDS
        accepted_now = 0
        refused = []
        for attempt, first in batch:
            if tokens < 1:
                stats["throttled_api"] += 1
                refused.append((attempt, first))
                continue
            tokens -= 1
            if concurrency_left < 1:
                stats["throttled_concurrency"] += 1
                refused.append((attempt, first))
                continue
            concurrency_left -= 1
            if wru_left < wru_per_event:
                stats["throttled_table"] += 1
                refused.append((attempt, first))
                continue
            if index_left < index_writes:
                stats["throttled_index"] += 1
                refused.append((attempt, first))
                continue
            wru_left -= wru_per_event
            index_left -= index_writes
            accepted_now += 1
            stats["max_delay"] = max(stats["max_delay"], t - first)
        for attempt, first in refused:
            if attempt >= ZOF_RETRY_ATTEMPTS:
                stats["lost"] += 1
            else:
                due = t + ZOF_RETRY_FIRST * 2 ** (attempt - 1)
                retries.setdefault(due, []).append((attempt + 1, first))
        stats["accepted"] += accepted_now
        used = accepted_now * wru_per_event
        used_at.append((t, used))
        stats["peak_wru"] = max(stats["peak_wru"], used)
        stats["peak_index_partition"] = max(stats["peak_index_partition"],
                                            math.ceil(accepted_now * index_writes / shards))
        stats["peak_receiver_concurrency"] = max(stats["peak_receiver_concurrency"],
                                                 accepted_now * RECEIVER_SECONDS)
        if accepted_now:
            queue.append([t, float(accepted_now)])
            queued += accepted_now
        # The worker takes the oldest messages first (near enough for a standard queue).
        capacity = worker_rate
        done = 0.0
        while queue and capacity > 0:
            take = min(capacity, queue[0][1])
            queue[0][1] -= take
            capacity -= take
            done += take
            if queue[0][1] <= 1e-9:
                queue.popleft()
        queued -= done
        stats["processed"] += done
        stats["peak_zof_api"] = max(stats["peak_zof_api"], done)
        stats["max_queue"] = max(stats["max_queue"], queued)
        if queue:
            stats["max_queue_age"] = max(stats["max_queue_age"], t - queue[0][0])
        if t >= 9 * 3600 + 600 and queued < 0.5 and not retries and stats["drained_at"] is None:
            stats["drained_at"] = t
        t += 1
    stats["worker_rate"] = worker_rate
    stats["processed"] = round(stats["processed"])
    stats["max_queue"] = round(stats["max_queue"])
    stats["peak_receiver_concurrency"] = round(stats["peak_receiver_concurrency"], 1)
    stats["peak_zof_api"] = round(stats["peak_zof_api"])
    return stats


def clock(seconds):
    if seconds is None:
        return "never"
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def report(title, p, s, layout):
    lines = [f"## {title}",
             f"ledger: {layout} ({LAYOUTS[layout]['wru']} WRU an event, "
             f"{LAYOUTS[layout]['index_writes']} of them to the time index, "
             f"{LAYOUTS[layout]['shards']} index partition(s) a day)",
             "parameters: " + ", ".join(f"{k}={p[k]}" for k in
                                        ["ThrottlingRateLimit", "ThrottlingBurstLimit",
                                         "WorkerMaximumConcurrency", "WorkerBatchSize"]),
             f"events: {s['accepted']:,} accepted of {s['events']:,} sent; "
             f"lost (Zof gave up): {s['lost']:,}",
             f"deliveries Zof made: {s['deliveries']:,} (429 from the API's throttle: "
             f"{s['throttled_api']:,}; 503 from DynamoDB throttling: "
             f"{s['throttled_table'] + s['throttled_index']:,}; refused for Lambda concurrency: "
             f"{s['throttled_concurrency']:,})",
             f"longest wait from an event's first delivery to its acceptance: {s['max_delay']:,} s",
             f"worker: {s['worker_rate']:.0f} events/s; largest backlog {s['max_queue']:,} "
             f"messages; oldest message age at most {s['max_queue_age']:,} s "
             f"(alarm at {p['QueueAgeAlarmSeconds']} s: "
             f"{'raised' if s['max_queue_age'] >= p['QueueAgeAlarmSeconds'] else 'quiet'}); "
             f"the release's backlog drained at {clock(s['drained_at'])}",
             f"peaks: receiver concurrency {s['peak_receiver_concurrency']}, table "
             f"{s['peak_wru']:,} WRU/s, one index partition {s['peak_index_partition']:,} "
             f"writes/s, Zof API {s['peak_zof_api']:,} GET/s"]
    return "\n".join(lines)


def main():
    defaults = template_defaults()
    raised = dict(defaults, ThrottlingRateLimit=200, ThrottlingBurstLimit=400,
                  WorkerMaximumConcurrency=20)
    big = dict(defaults, ThrottlingRateLimit=1_200, ThrottlingBurstLimit=2_400,
               WorkerMaximumConcurrency=120)
    runs = [
        ("a day, the default stack", defaults, A_DAY, "by_time"),
        ("a day, raised for it", raised, A_DAY, "by_time"),
        ("a big day (1,000 events/s for 10 minutes), raised for it", big, A_BIG_DAY, "by_time"),
        ("the same big day on the old layout", big, A_BIG_DAY, "by_day"),
    ]
    results = [(title, p, simulate(p, bursts, layout), layout)
               for title, p, bursts, layout in runs]
    if "--json" in sys.argv:
        print(json.dumps({title: s for title, _, s, _ in results}, indent=2))
        return
    print("\n\n".join(report(title, p, s, layout) for title, p, s, layout in results))


if __name__ == "__main__":
    main()
