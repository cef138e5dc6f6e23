//! One `listen`: what it keeps between polls, each poll (the index, then each new record), and
//! each forward.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zofhook_core::ledger::{Ledger, Record, Status};
use zofhook_core::signature::{Secrets, Verifier};

/// How far back each poll reads the index: longer than a delivery may take between stamping
/// `received_at` and its write landing (Zof's 10 s), plus the index's propagation.
pub const LOOKBACK_MS: i64 = 60_000;

/// How long the handler has to answer one event (Zof's own limit).
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// An event still `received` (its delivery in flight) is looked at again on each poll; after this
/// long it is dropped (its delivery failed, and Zof's retry records it afresh).
const PENDING_MS: i64 = 3_600_000;

/// At most this many events wait for a status (`--status`) at once; the oldest go first.
const PENDING_MAX: usize = 10_000;

/// What `listen` keeps between polls.
pub struct Follower {
    pub ledger: Arc<dyn Ledger>,
    pub client: reqwest::Client,
    pub url: String,
    pub verifier: Verifier,
    pub secrets: Secrets,
    pub kind: Option<String>,
    pub statuses: Vec<Status>,
    pub replayed: bool,
    /// Where the window starts: the start, then the lookback.
    pub start: String,
    /// What was taken from the index while inside the window, (`id`, replay number; 0 for the
    /// acceptance) with its time.
    pub seen: HashMap<(String, u32), String>,
    /// Taken, not yet forwarded or dropped, by (time, `id`, replay number).
    pub pending: BTreeSet<(String, String, u32)>,
    /// Events the handler did not answer since it last answered.
    pub missed: Vec<String>,
    pub missed_total: usize,
    pub forwarded: usize,
    /// Reads of the time index (each a query per shard of each day it spans) and of records.
    pub index_reads: usize,
    pub record_reads: usize,
    /// The ledger's last error, printed once until it answers again.
    pub ledger_down: Option<String>,
}

impl Follower {
    pub async fn poll(&mut self) {
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
                self.pending.insert((at, key.0, key.1));
            }
        }
        // Entries older than the window are never read again.
        self.seen.retain(|_, at| *at >= since);
        while self.pending.len() > PENDING_MAX {
            if let Some((_, id, _)) = self.pending.pop_first() {
                println!("{id} not forwarded: more than {PENDING_MAX} events wait for a status");
            }
        }
        let oldest = zofhook_core::rfc3339(now - PENDING_MS);
        let waiting: Vec<(String, String, u32)> = self.pending.iter().cloned().collect();
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
