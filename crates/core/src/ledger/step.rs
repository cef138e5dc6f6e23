//! Each [`super::Ledger`] method's one atomic step, on the stored record (`None`: there is none): what
//! the in-memory and SQLite ledgers do inside their lock or transaction, what the model checker
//! (`model/`) does to its ledger, and what the DynamoDB ledger states as condition expressions.

use super::{claim_step, may_begin, replay_in_place, Begin, Claim, ClaimStep, Record};
use super::{ReplayStart, Status};
use serde_json::Value;

/// Whether `slot` holds a record in one of `from` under the lease `token`.
fn held<'a>(slot: &'a mut Option<Record>, token: &str, from: &[Status]) -> Option<&'a mut Record> {
    slot.as_mut()
        .filter(|r| r.lease_token.as_deref() == Some(token) && from.contains(&r.status))
}

/// [`super::Ledger::begin`].
pub fn begin(slot: &mut Option<Record>, record: &Record, now_ms: i64) -> Begin {
    match slot {
        Some(old) if !may_begin(Some(old), now_ms) => Begin::Exists(Box::new(old.clone())),
        _ => {
            *slot = Some(record.clone());
            Begin::Started
        }
    }
}

/// [`super::Ledger::mark_enqueued`].
pub fn mark_enqueued(slot: &mut Option<Record>, token: &str) -> bool {
    held(slot, token, &[Status::Received])
        .map(|r| r.status = Status::Enqueued)
        .is_some()
}

/// [`super::Ledger::abandon`].
pub fn abandon(slot: &mut Option<Record>, token: &str) -> bool {
    let ours = slot
        .as_ref()
        .is_some_and(|r| r.lease_token.as_deref() == Some(token));
    if ours {
        *slot = None;
    }
    ours
}

/// [`super::Ledger::claim`].
pub fn claim(slot: &mut Option<Record>, claim: &Record, create: bool, now_ms: i64) -> Claim {
    if let ClaimStep::Refuse(refused) = claim_step(slot.as_ref(), claim, create, now_ms) {
        return refused;
    }
    let record = match slot.take() {
        None => claim.clone(),
        Some(mut r) => {
            r.status = Status::Processing;
            r.lease_until = claim.lease_until;
            r.lease_token = claim.lease_token.clone();
            r
        }
    };
    *slot = Some(record.clone());
    Claim::Claimed(record)
}

/// [`super::Ledger::finish`].
pub fn finish(slot: &mut Option<Record>, token: &str, outcome: &Value, at: &str) -> bool {
    held(slot, token, &[Status::Processing])
        .map(|r| {
            r.status = Status::Processed;
            r.outcome = Some(outcome.clone());
            r.error = None;
            r.processed_at = Some(at.to_string());
            r.lease_until = 0;
        })
        .is_some()
}

/// [`super::Ledger::fail`].
pub fn fail(slot: &mut Option<Record>, token: &str, error: &str, partial: Option<&Value>) -> bool {
    held(slot, token, &[Status::Processing])
        .map(|r| {
            if let Some(partial) = partial {
                r.outcome = Some(partial.clone());
            }
            r.status = Status::Failed;
            r.error = Some(error.to_string());
            r.attempts += 1;
            r.lease_until = 0;
        })
        .is_some()
}

/// [`super::Ledger::replay`].
pub fn replay(slot: &mut Option<Record>, now_ms: i64) -> ReplayStart {
    replay_in_place(slot.as_mut(), now_ms)
}
