//! An in-memory ledger for unit tests and benchmarks: the rules of `ledger` under one mutex.

use super::{
    claim_step, cursor_after, may_begin, parse_cursor, replay_in_place, Begin, Claim, ClaimStep,
    Ledger, LedgerError, Page, Record, ReplayStart, Selection, Status,
};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct MemoryLedger {
    records: Mutex<HashMap<String, Record>>,
    /// When set, every call fails as an unavailable store would.
    pub down: AtomicBool,
}

impl MemoryLedger {
    pub fn new() -> MemoryLedger {
        MemoryLedger::default()
    }

    pub fn len(&self) -> usize {
        self.lock().map(|r| r.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores a record as is (tests set up stuck or odd states with it).
    pub fn insert(&self, record: Record) {
        if let Ok(mut records) = self.lock() {
            records.insert(record.id.clone(), record);
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Record>>, LedgerError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(LedgerError::Unavailable("memory ledger is down".into()));
        }
        self.records
            .lock()
            .map_err(|_| LedgerError::Unavailable("memory ledger lock poisoned".into()))
    }

    fn update_held(
        &self,
        id: &str,
        token: &str,
        from: &[Status],
        change: impl FnOnce(&mut Record),
    ) -> Result<bool, LedgerError> {
        let mut records = self.lock()?;
        match records.get_mut(id) {
            Some(r) if r.lease_token.as_deref() == Some(token) && from.contains(&r.status) => {
                change(r);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl Ledger for MemoryLedger {
    async fn begin(&self, record: &Record, now_ms: i64) -> Result<Begin, LedgerError> {
        let mut records = self.lock()?;
        let existing = records.get(&record.id);
        if may_begin(existing, now_ms) {
            records.insert(record.id.clone(), record.clone());
            Ok(Begin::Started)
        } else {
            let old = existing
                .cloned()
                .ok_or_else(|| LedgerError::Corrupt("record vanished under the lock".into()))?;
            Ok(Begin::Exists(Box::new(old)))
        }
    }

    async fn mark_enqueued(&self, id: &str, token: &str) -> Result<bool, LedgerError> {
        self.update_held(id, token, &[Status::Received], |r| {
            r.status = Status::Enqueued
        })
    }

    async fn abandon(&self, id: &str, token: &str) -> Result<bool, LedgerError> {
        let mut records = self.lock()?;
        match records.get(id) {
            Some(r) if r.lease_token.as_deref() == Some(token) => {
                records.remove(id);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn claim(&self, claim: &Record, create: bool, now_ms: i64) -> Result<Claim, LedgerError> {
        let mut records = self.lock()?;
        if let ClaimStep::Refuse(refused) =
            claim_step(records.get(&claim.id), claim, create, now_ms)
        {
            return Ok(refused);
        }
        match records.get_mut(&claim.id) {
            None => {
                records.insert(claim.id.clone(), claim.clone());
                Ok(Claim::Claimed(claim.clone()))
            }
            Some(r) => {
                r.status = Status::Processing;
                r.lease_until = claim.lease_until;
                r.lease_token = claim.lease_token.clone();
                Ok(Claim::Claimed(r.clone()))
            }
        }
    }

    async fn finish(
        &self,
        id: &str,
        token: &str,
        outcome: &Value,
        processed_at: &str,
    ) -> Result<bool, LedgerError> {
        self.update_held(id, token, &[Status::Processing], |r| {
            r.status = Status::Processed;
            r.outcome = Some(outcome.clone());
            r.error = None;
            r.processed_at = Some(processed_at.to_string());
            r.lease_until = 0;
        })
    }

    async fn fail(
        &self,
        id: &str,
        token: &str,
        error: &str,
        partial: Option<&Value>,
    ) -> Result<bool, LedgerError> {
        self.update_held(id, token, &[Status::Processing], |r| {
            if let Some(partial) = partial {
                r.outcome = Some(partial.clone());
            }
            r.status = Status::Failed;
            r.error = Some(error.to_string());
            r.attempts += 1;
            r.lease_until = 0;
        })
    }

    async fn get(&self, id: &str) -> Result<Option<Record>, LedgerError> {
        Ok(self.lock()?.get(id).cloned())
    }

    async fn replay(&self, id: &str, now_ms: i64) -> Result<ReplayStart, LedgerError> {
        Ok(replay_in_place(self.lock()?.get_mut(id), now_ms))
    }

    async fn list(&self, selection: &Selection, cursor: Option<&str>) -> Result<Page, LedgerError> {
        let after = cursor.map(parse_cursor).transpose()?;
        let mut records: Vec<Record> = self
            .lock()?
            .values()
            .filter(|r| selection.admits(r))
            .filter(|r| {
                after.as_ref().is_none_or(|(at, id)| {
                    (r.received_at.as_str(), r.id.as_str()) < (at.as_str(), id.as_str())
                })
            })
            .cloned()
            .collect();
        records.sort_by(|a, b| (&b.received_at, &b.id).cmp(&(&a.received_at, &a.id)));
        let more = records.len() > selection.limit;
        records.truncate(selection.limit);
        let next = more.then(|| records.last().map(cursor_after)).flatten();
        Ok(Page { records, next })
    }
}
