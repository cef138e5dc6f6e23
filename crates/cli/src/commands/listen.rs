//! `zofhook listen --forward-to URL`: follow the ledger (with `--aws`, the deployed table's time
//! index, by reads alone) and forward every event accepted after the start to a local handler,
//! with its archived body signed afresh with the local secret, one line per event
//! (docs/design.md section 11; the anchor is `stripe listen --forward-to`).
//!
//! Each poll reads the index entries received in the last [`LOOKBACK_MS`] (a record may reach
//! the index a little after its `received_at`), remembers the ids it has taken, and reads each
//! new record once it is accepted (past `received`). With `--replayed` it reads the replays'
//! notes too (`zofhook replay` writes one per replay, in the same index). A handler that does
//! not answer is reported per event and again when it answers once more, with the ids it
//! missed; the polling goes on.

use super::send::verifier;
use crate::global::Global;
use crate::listener::shutdown_signal;
use crate::secret::secrets;
use crate::store::{Backend, Needs};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zofhook_core::config::Config;
use zofhook_core::ledger::{Ledger, Record, Status};
use zofhook_core::signature::{Secrets, Verifier};

/// How far back each poll reads the index: longer than a delivery may take between stamping
/// `received_at` and its write landing (Zof's 10 s), plus the index's propagation.
pub const LOOKBACK_MS: i64 = 60_000;

/// How long the handler has to answer one event (Zof's own limit).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// An event still `received` (its delivery in flight) is looked at again on each poll; after this
/// long it is dropped (its delivery failed, and Zof's retry records it afresh).
const PENDING_MS: i64 = 3_600_000;

/// At most this many events wait for a status (`--status`) at once; the oldest go first.
const PENDING_MAX: usize = 10_000;

#[derive(Args, Debug)]
pub struct ListenArgs {
    /// Where to POST each event: the handler in development.
    #[arg(long)]
    pub forward_to: String,
    /// Only events of this type.
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Only events in these statuses (comma-separated or repeated): each is forwarded once it
    /// reaches one of them (`--status failed`: when the worker gives up on it).
    #[arg(long, value_delimiter = ',')]
    pub status: Vec<String>,
    /// Also forward replays (`zofhook replay`, the console's Replay) made from now on, of any
    /// event, old ones included.
    #[arg(long)]
    pub replayed: bool,
    /// How often to read the ledger: 100ms to 60s.
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let (digits, unit) = match text.strip_suffix("ms") {
        Some(d) => (d, 1),
        None => match text.strip_suffix('s') {
            Some(d) => (d, 1000),
            None => {
                return Err(format!(
                    "{text:?}: give milliseconds or seconds (500ms, 2s)"
                ))
            }
        },
    };
    let ms = digits
        .parse::<u64>()
        .map_err(|_| format!("{text:?}: give milliseconds or seconds (500ms, 2s)"))?
        .saturating_mul(unit);
    if !(100..=60_000).contains(&ms) {
        return Err(format!("{text:?}: between 100ms and 60s"));
    }
    Ok(Duration::from_millis(ms))
}

/// What `listen` keeps between polls.
struct Follower {
    ledger: Arc<dyn Ledger>,
    client: reqwest::Client,
    url: String,
    verifier: Verifier,
    secrets: Secrets,
    kind: Option<String>,
    statuses: Vec<Status>,
    replayed: bool,
    /// Where the window starts: the start, then the lookback.
    start: String,
    /// What was taken from the index while inside the window, (`id`, replay number; 0 for the
    /// acceptance) with its time.
    seen: HashMap<(String, u32), String>,
    /// Taken, not yet forwarded or dropped, by (time, `id`, replay number).
    pending: BTreeMap<(String, String, u32), ()>,
    /// Events the handler did not answer since it last answered.
    missed: Vec<String>,
    missed_total: usize,
    forwarded: usize,
    /// Reads of the time index (each a query per shard of each day it spans) and of records.
    index_reads: usize,
    record_reads: usize,
    /// The ledger's last error, printed once until it answers again.
    ledger_down: Option<String>,
}

impl Follower {
    async fn poll(&mut self) {
        let now = zofhook_core::now_ms();
        let window = zofhook_core::rfc3339(now - LOOKBACK_MS);
        let since = window.max(self.start.clone());
        self.index_reads += 1;
        let keys = match self.ledger.accepted_since(&since).await {
            Ok(keys) => keys,
            Err(e) => return self.ledger_failed(e.to_string()),
        };
        let mut taken: Vec<(String, String, u32)> =
            keys.into_iter().map(|(at, id)| (at, id, 0)).collect();
        if self.replayed {
            self.index_reads += 1;
            match self.ledger.replays_since(&since).await {
                Ok(notes) => taken.extend(notes.into_iter().map(|n| (n.at, n.id, n.n))),
                Err(e) => return self.ledger_failed(e.to_string()),
            }
        }
        for (at, id, n) in taken {
            let key = (id, n);
            if at >= self.start && !self.seen.contains_key(&key) {
                self.seen.insert(key.clone(), at.clone());
                self.pending.insert((at, key.0, key.1), ());
            }
        }
        // Entries older than the window are never read again.
        self.seen.retain(|_, at| *at >= since);
        while self.pending.len() > PENDING_MAX {
            if let Some(((_, id, _), ())) = self.pending.pop_first() {
                println!("{id} not forwarded: more than {PENDING_MAX} events wait for a status");
            }
        }
        let oldest = zofhook_core::rfc3339(now - PENDING_MS);
        let waiting: Vec<(String, String, u32)> = self.pending.keys().cloned().collect();
        for key in waiting {
            let (at, id, n) = &key;
            self.record_reads += 1;
            let record = match self.ledger.get(id).await {
                Ok(record) => record,
                Err(e) => return self.ledger_failed(e.to_string()),
            };
            self.ledger_back();
            match self.decide(record, at < &oldest) {
                Decision::Wait => continue,
                Decision::Drop => {}
                Decision::Forward(record) => self.forward(&record, *n).await,
            }
            self.pending.remove(&key);
        }
        self.ledger_back();
    }

    fn decide(&self, record: Option<Record>, too_old: bool) -> Decision {
        // Gone: its delivery failed and rolled back (Zof retries it under the same id).
        let Some(record) = record else {
            return Decision::Drop;
        };
        if self.kind.as_ref().is_some_and(|k| *k != record.kind) {
            return Decision::Drop;
        }
        let accepted = record.status != Status::Received;
        let admitted = if self.statuses.is_empty() {
            accepted
        } else {
            self.statuses.contains(&record.status)
        };
        let settled = matches!(record.status, Status::Processed | Status::Failed);
        if admitted {
            Decision::Forward(Box::new(record))
        } else if settled || too_old {
            Decision::Drop
        } else {
            Decision::Wait
        }
    }

    async fn forward(&mut self, record: &Record, replay: u32) {
        let label = match replay {
            0 => format!("{} {}", record.id, record.kind),
            n => format!("{} {} (replay {n})", record.id, record.kind),
        };
        let Some(body) = &record.body else {
            println!("{label} → not forwarded: the ledger holds no body for it");
            return;
        };
        let at = zofhook_core::now_ms() / 1000;
        let headers =
            self.verifier
                .sign_headers(&self.secrets.current, body.as_bytes(), at, &record.id);
        let began = Instant::now();
        let sent = self
            .client
            .post(&self.url)
            .headers(headers)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let ms = began.elapsed().as_millis();
        match sent {
            Ok(response) => {
                if !self.missed.is_empty() {
                    println!(
                        "the handler answers again; it missed {} event(s) while it did not: {}",
                        self.missed.len(),
                        self.missed.join(", ")
                    );
                    self.missed.clear();
                }
                self.forwarded += 1;
                println!("{label} → {} in {ms} ms", response.status().as_u16());
            }
            Err(e) => {
                self.missed.push(record.id.clone());
                self.missed_total += 1;
                println!("{label} → not delivered: {}", why(&e));
            }
        }
    }

    fn ledger_failed(&mut self, error: String) {
        if self.ledger_down.as_deref() != Some(error.as_str()) {
            eprintln!("zofhook: cannot read the ledger (retrying each poll): {error}");
            self.ledger_down = Some(error);
        }
    }

    fn ledger_back(&mut self) {
        if self.ledger_down.take().is_some() {
            eprintln!("zofhook: the ledger answers again");
        }
    }
}

enum Decision {
    Forward(Box<Record>),
    /// Not accepted yet, or not yet in an asked-for status: look again next poll.
    Wait,
    Drop,
}

/// The reason a forward failed, as its innermost cause says it.
fn why(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer in {} s", FORWARD_TIMEOUT.as_secs());
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

pub async fn listen(global: &Global, config: &Config, args: ListenArgs) -> Result<i32> {
    let url = reqwest::Url::parse(&args.forward_to)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .with_context(|| format!("--forward-to {:?} is not an http(s) URL", args.forward_to))?;
    let mut statuses = Vec::new();
    for status in &args.status {
        let status = status.trim();
        match status.parse::<Status>() {
            Ok(s) => statuses.push(s),
            Err(_) => bail!(
                "--status {status:?}: one of received, enqueued, processing, processed, failed"
            ),
        }
    }
    let (secrets, _) = secrets(global, config, false)?;
    let backend = Backend::open(global, config, Needs::EVENTS).await?;
    let place = match (&global.table_name, global.aws) {
        (Some(table), true) => format!("DynamoDB table {table}"),
        _ => backend.describe(global),
    };
    let start = zofhook_core::rfc3339(zofhook_core::now_ms());
    let mut follower = Follower {
        ledger: backend.ledger()?,
        client: reqwest::Client::builder()
            .timeout(FORWARD_TIMEOUT)
            .build()?,
        url: url.to_string(),
        verifier: verifier(config),
        secrets,
        kind: args.kind.clone(),
        statuses,
        replayed: args.replayed,
        start: start.clone(),
        seen: HashMap::new(),
        pending: BTreeMap::new(),
        missed: Vec::new(),
        missed_total: 0,
        forwarded: 0,
        index_reads: 0,
        record_reads: 0,
        ledger_down: None,
    };
    // The first read checks the table before the ready line.
    follower
        .ledger
        .accepted_since(&start)
        .await
        .with_context(|| format!("cannot read the ledger ({place})"))?;
    println!("Forwarding events accepted from {start} on ({place}) to {url}; Ctrl-C stops");
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut ticks = tokio::time::interval(args.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticks.tick() => {
                tokio::select! {
                    _ = &mut stop => break,
                    () = follower.poll() => {}
                }
            }
        }
    }
    let missed = if follower.missed_total == 0 {
        String::new()
    } else {
        format!(
            "; {} not delivered (the handler did not answer)",
            follower.missed_total
        )
    };
    println!("Stopped: {} event(s) forwarded{missed}", follower.forwarded);
    eprintln!(
        "zofhook: read the ledger's time index {} time(s) and {} record(s)",
        follower.index_reads, follower.record_reads
    );
    Ok(0)
}
