//! The idempotency ledger (docs/design.md section 4): one record per event id, its statuses, and the
//! conditional transitions every implementation must make atomically.
//!
//! The rules live here once, as predicates on the stored record ([`may_begin`], [`may_claim`]);
//! the in-memory and SQLite ledgers apply them inside a lock or transaction, and the DynamoDB
//! ledger states the same rules as condition expressions.

#[cfg(feature = "aws")]
pub mod dynamodb;
pub mod memory;
mod select;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod step;

pub use select::{BadSelection, SelectionText};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Received,
    Enqueued,
    Processing,
    Processed,
    Failed,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Received,
        Status::Enqueued,
        Status::Processing,
        Status::Processed,
        Status::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Received => "received",
            Status::Enqueued => "enqueued",
            Status::Processing => "processing",
            Status::Processed => "processed",
            Status::Failed => "failed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = LedgerError;
    fn from_str(s: &str) -> Result<Status, LedgerError> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| LedgerError::Corrupt(format!("unknown status {s:?}")))
    }
}

/// One event id's record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub status: Status,
    #[serde(rename = "type")]
    pub kind: String,
    pub body_sha256: String,
    pub organization_id: Option<String>,
    pub run_id: Option<String>,
    /// RFC 3339, UTC.
    pub received_at: String,
    /// Epoch milliseconds until which the current holder owns the record.
    pub lease_until: i64,
    pub lease_token: Option<String>,
    /// The lease token of the delivery that recorded the event, kept when a worker claims it:
    /// how a delivery whose rollback was refused learns that a worker took over its own record
    /// (so its message reached the queue), rather than a later delivery's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_token: Option<String>,
    /// Failed processing attempts.
    pub attempts: u32,
    pub outcome: Option<Value>,
    pub error: Option<String>,
    /// RFC 3339, UTC.
    pub processed_at: Option<String>,
    /// Epoch seconds after which the id is forgotten (TTL).
    pub expires_at: i64,
    /// The exact bytes that were verified (after any base64 decoding), kept for replay; `None`
    /// for records written before bodies were archived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Times the event was replayed.
    #[serde(default)]
    pub replays: u32,
}

impl Record {
    /// A delivery's record of a verified event: `received`, under the delivery's lease `token`
    /// until `lease_until`, keeping the exact `body` for replay.
    pub fn received(
        envelope: &crate::event::Envelope,
        body: &[u8],
        token: &str,
        now_ms: i64,
        lease_until: i64,
        retention_seconds: i64,
    ) -> Record {
        Record {
            id: envelope.id.clone(),
            status: Status::Received,
            kind: envelope.kind.clone(),
            body_sha256: crate::event::body_sha256(body),
            organization_id: envelope.organization_id.clone(),
            run_id: envelope.run_id.clone(),
            received_at: crate::clock::rfc3339(now_ms),
            lease_until,
            lease_token: Some(token.to_string()),
            delivery_token: Some(token.to_string()),
            attempts: 0,
            outcome: None,
            error: None,
            processed_at: None,
            expires_at: now_ms / 1000 + retention_seconds,
            // Verified JSON is UTF-8; kept byte for byte for replay.
            body: std::str::from_utf8(body).ok().map(str::to_string),
            replays: 0,
        }
    }

    /// A worker's claim of a queued event: `processing` under the claim's `token` until
    /// `lease_until`. A record the claim creates (its own was rolled back or expired) keeps the
    /// body too, and no delivery's token.
    pub fn claimed(
        envelope: &crate::event::Envelope,
        body: &[u8],
        token: &str,
        now_ms: i64,
        lease_until: i64,
        retention_seconds: i64,
    ) -> Record {
        Record {
            status: Status::Processing,
            delivery_token: None,
            ..Record::received(
                envelope,
                body,
                token,
                now_ms,
                lease_until,
                retention_seconds,
            )
        }
    }

    /// Whether the record has outlived its retention (TTL deletion is lazy, so check it here).
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_at < now_ms / 1000
    }

    pub fn lease_live(&self, now_ms: i64) -> bool {
        self.lease_until >= now_ms
    }
}

/// Whether a delivery may (re)create the record: none, expired, or a `received` whose lease ran out.
pub fn may_begin(existing: Option<&Record>, now_ms: i64) -> bool {
    match existing {
        None => true,
        Some(r) => r.expired(now_ms) || (r.status == Status::Received && !r.lease_live(now_ms)),
    }
}

/// Whether the worker may claim: from `received`, `enqueued` or `failed`, an expired
/// `processing` lease, or no record at all (its message outlived a rollback or the TTL).
pub fn may_claim(existing: Option<&Record>, now_ms: i64) -> bool {
    match existing {
        None => true,
        Some(r) => match r.status {
            Status::Received | Status::Enqueued | Status::Failed => true,
            Status::Processing => !r.lease_live(now_ms),
            Status::Processed => false,
        },
    }
}

/// What a worker's claim does with what it found ([`Ledger::claim`]): the rule the stores that
/// read then write apply, and that DynamoDB states as a condition expression.
pub fn claim_step(
    existing: Option<&Record>,
    claim: &Record,
    create: bool,
    now_ms: i64,
) -> ClaimStep {
    match existing {
        None if create => ClaimStep::Take,
        None => ClaimStep::Refuse(Claim::Absent),
        // Another event's record: the message is a conflicting delivery's, sent alongside the
        // put that was refused (the receiver sends while it records). Never process its body.
        Some(r) if r.body_sha256 != claim.body_sha256 => {
            ClaimStep::Refuse(Claim::Foreign(r.clone()))
        }
        Some(r) if may_claim(Some(r), now_ms) => ClaimStep::Take,
        Some(r) if r.status == Status::Processed => ClaimStep::Refuse(Claim::Processed(r.clone())),
        Some(r) => ClaimStep::Refuse(Claim::Busy(r.clone())),
    }
}

/// See [`claim_step`]. A value that lives for one claim: boxing the refusal buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimStep {
    /// Claim it: create the record from the claim, or set `processing` on the one there.
    Take,
    /// Leave the store as it is, and answer this.
    Refuse(Claim),
}

/// Whether an event may be replayed: it has no live claim (a delivery or a worker at work on it).
pub fn may_replay(record: &Record, now_ms: i64) -> bool {
    match record.status {
        Status::Processed | Status::Failed | Status::Enqueued => true,
        Status::Received | Status::Processing => !record.lease_live(now_ms),
    }
}

/// The replay transition on a record that [`may_replay`] allows: back to `enqueued`, one more
/// replay, the outcome and error cleared (so every sink is called again), attempts kept.
pub fn replayed(record: &mut Record) {
    record.status = Status::Enqueued;
    record.replays = record.replays.saturating_add(1);
    record.outcome = None;
    record.error = None;
    record.lease_until = 0;
}

/// What became of a replay request for one id.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayStart {
    /// Now `enqueued`; the record after the transition, with its body to send.
    Started(Box<Record>),
    NotFound,
    /// Written before bodies were archived: nothing to send.
    NoBody,
    /// A claim is live (a delivery or a worker holds it): never doubled.
    Live(Status),
}

/// Which records `events list` and `replay` select. Times are RFC 3339 strings as stored
/// (`received_at`), `since` inclusive and `until` exclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Any of these statuses; empty for any.
    pub statuses: Vec<Status>,
    pub kind: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// Records per page.
    pub limit: usize,
}

impl Selection {
    pub fn admits(&self, r: &Record) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&r.status))
            && self.kind.as_ref().is_none_or(|k| *k == r.kind)
            && self.since.as_ref().is_none_or(|t| r.received_at >= *t)
            && self.until.as_ref().is_none_or(|t| r.received_at < *t)
    }
}

/// One page of a selection, newest first, and the cursor of the next page (`None`: the last).
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<Record>,
    pub next: Option<String>,
}

/// The position after `record` in newest-first order, as an opaque cursor (for the stores that
/// order by `received_at`, then `id`).
pub fn cursor_after(record: &Record) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{}|{}", record.received_at, record.id))
}

/// The (`received_at`, `id`) a cursor stands for.
pub fn parse_cursor(cursor: &str) -> Result<(String, String), LedgerError> {
    use base64::Engine;
    let bad = || LedgerError::BadCursor(cursor.to_string());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (at, id) = text.split_once('|').ok_or_else(bad)?;
    Ok((at.to_string(), id.to_string()))
}

/// What a delivery found when it tried to record its event.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// The record is ours, holding the new lease.
    Started,
    /// Another delivery of this id got there first; its record as stored.
    Exists(Box<Record>),
}

/// What the worker found when it tried to claim an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Ours until the lease ends; the record after the claim.
    Claimed(Record),
    /// Already processed: acknowledge the message and skip it.
    Processed(Record),
    /// Another worker holds a live lease: retry later.
    Busy(Record),
    /// No record, and the claim may not create one (the message is younger than a receive
    /// lease: the delivery that sent it may still be writing the record). Retry later.
    Absent,
    /// The record holds another body under this id: the message is a conflicting delivery's
    /// (answered 409), never to be processed. Acknowledge and drop it.
    Foreign(Record),
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LedgerError {
    #[error("the ledger is unavailable: {0}")]
    Unavailable(String),
    /// The store refused the write as invalid (DynamoDB's `ValidationException`, such as an item
    /// over 400 KB): retrying the same write can never succeed.
    #[error("the ledger refused the write: {0}")]
    Rejected(String),
    #[error("the ledger holds a record it cannot read: {0}")]
    Corrupt(String),
    #[error("{0:?} is not a cursor this ledger gave out")]
    BadCursor(String),
}

/// The conditional transitions of docs/design.md section 4. Every method is one atomic step.
/// Methods that return `bool` answer `false` when the record is no longer held by `token`.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Creates `record` (status `received`, with its lease) if [`may_begin`] allows.
    async fn begin(&self, record: &Record, now_ms: i64) -> Result<Begin, LedgerError>;
    /// `received` → `enqueued`, if still held by `token`.
    async fn mark_enqueued(&self, id: &str, token: &str) -> Result<bool, LedgerError>;
    /// Deletes the record if still held by `token` (the queue send failed).
    async fn abandon(&self, id: &str, token: &str) -> Result<bool, LedgerError>;
    /// Sets `processing` with `claim`'s lease and token as [`claim_step`] says: if
    /// [`may_claim`] allows and the record holds `claim`'s body, or by creating the record from
    /// `claim` if there is none and `create` allows.
    async fn claim(&self, claim: &Record, create: bool, now_ms: i64) -> Result<Claim, LedgerError>;
    /// `processing` → `processed` with the outcome, if still held by `token`.
    async fn finish(
        &self,
        id: &str,
        token: &str,
        outcome: &Value,
        processed_at: &str,
    ) -> Result<bool, LedgerError>;
    /// `processing` → `failed` with the error and one more attempt, if still held by `token`.
    /// `partial`, when given, replaces the outcome: what this attempt did achieve (the sinks
    /// that succeeded), so the retry does not repeat it.
    async fn fail(
        &self,
        id: &str,
        token: &str,
        error: &str,
        partial: Option<&Value>,
    ) -> Result<bool, LedgerError>;
    async fn get(&self, id: &str) -> Result<Option<Record>, LedgerError>;
    /// Back to `enqueued` for a replay, if [`may_replay`] allows and the body is archived.
    async fn replay(&self, id: &str, now_ms: i64) -> Result<ReplayStart, LedgerError>;
    /// A page of the records `selection` admits, newest first, from `cursor` on.
    async fn list(&self, selection: &Selection, cursor: Option<&str>) -> Result<Page, LedgerError>;
    /// Notes that `id` was replayed (its `n`th replay) at `now_ms`, for `zofhook listen
    /// --replayed` (a replay keeps the record's place in time). Kept a day.
    async fn note_replay(&self, id: &str, n: u32, now_ms: i64) -> Result<(), LedgerError>;
    /// The replays noted at or after `since`, oldest first.
    async fn replays_since(&self, since: &str) -> Result<Vec<Noted>, LedgerError>;
    /// The (`received_at`, `id`) of every record received at or after `since`, oldest first:
    /// what `zofhook listen` follows. Only keys are read (on DynamoDB the time index alone);
    /// this default pages through [`Ledger::list`].
    async fn accepted_since(&self, since: &str) -> Result<Vec<(String, String)>, LedgerError> {
        let selection = Selection {
            since: Some(since.to_string()),
            limit: 500,
            ..Selection::default()
        };
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.list(&selection, cursor.as_deref()).await?;
            keys.extend(page.records.into_iter().map(|r| (r.received_at, r.id)));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        keys.reverse();
        Ok(keys)
    }
}

/// One replay as [`Ledger::note_replay`] noted it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Noted {
    /// RFC 3339, UTC.
    pub at: String,
    pub id: String,
    /// Its number: the record's `replays` after it.
    pub n: u32,
}

/// How long a replay's note is kept (seconds).
pub const NOTE_SECONDS: i64 = 86_400;

/// [`Ledger::replay`] for the stores that read and write a record in one atomic step.
pub fn replay_in_place(existing: Option<&mut Record>, now_ms: i64) -> ReplayStart {
    match existing {
        None => ReplayStart::NotFound,
        Some(r) if r.body.is_none() => ReplayStart::NoBody,
        Some(r) if !may_replay(r, now_ms) => ReplayStart::Live(r.status),
        Some(r) => {
            replayed(r);
            ReplayStart::Started(Box::new(r.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn record(status: Status, lease_until: i64) -> Record {
        Record {
            id: "evt_1".into(),
            status,
            kind: "run.completed".into(),
            body_sha256: "00".into(),
            organization_id: None,
            run_id: None,
            received_at: "2026-01-01T00:00:00Z".into(),
            lease_until,
            lease_token: Some("t".into()),
            delivery_token: None,
            attempts: 0,
            outcome: None,
            error: None,
            processed_at: None,
            expires_at: 10_000,
            body: None,
            replays: 0,
        }
    }

    #[test]
    fn begin_rules() {
        let now = 5_000_000;
        assert!(may_begin(None, now));
        assert!(!may_begin(Some(&record(Status::Received, now + 1)), now));
        assert!(may_begin(Some(&record(Status::Received, now - 1)), now));
        for s in [
            Status::Enqueued,
            Status::Processing,
            Status::Processed,
            Status::Failed,
        ] {
            assert!(!may_begin(Some(&record(s, 0)), now), "{s}");
        }
        // Expired retention: any status may be replaced.
        assert!(may_begin(Some(&record(Status::Processed, 0)), 10_001_000));
    }

    #[test]
    fn claim_rules() {
        let now = 5_000;
        assert!(may_claim(None, now));
        for s in [Status::Received, Status::Enqueued, Status::Failed] {
            assert!(may_claim(Some(&record(s, now + 100)), now), "{s}");
        }
        assert!(!may_claim(Some(&record(Status::Processing, now + 1)), now));
        assert!(may_claim(Some(&record(Status::Processing, now - 1)), now));
        assert!(!may_claim(Some(&record(Status::Processed, 0)), now));
    }

    #[test]
    fn statuses_are_lowercase_everywhere() {
        for s in Status::ALL {
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                Value::String(s.to_string())
            );
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
        }
    }
}
