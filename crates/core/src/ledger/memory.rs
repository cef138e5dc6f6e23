//! An in-memory ledger for unit tests and benchmarks: the rules of `ledger` under one mutex.

use super::{
    cursor_after, parse_cursor, step, Begin, Claim, Ledger, LedgerError, Noted, Page, Record,
    ReplayStart, Selection,
};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct MemoryLedger {
    records: Mutex<HashMap<String, Record>>,
    notes: Mutex<Vec<Noted>>,
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

    /// Runs one [`step`] on the record of `id`, under the lock.
    fn step<T>(
        &self,
        id: &str,
        step: impl FnOnce(&mut Option<Record>) -> T,
    ) -> Result<T, LedgerError> {
        let mut records = self.lock()?;
        let mut slot = records.remove(id);
        let out = step(&mut slot);
        if let Some(record) = slot {
            records.insert(id.to_string(), record);
        }
        Ok(out)
    }
}

#[async_trait]
impl Ledger for MemoryLedger {
    async fn begin(&self, record: &Record, now_ms: i64) -> Result<Begin, LedgerError> {
        self.step(&record.id, |slot| step::begin(slot, record, now_ms))
    }

    async fn mark_enqueued(&self, id: &str, token: &str) -> Result<bool, LedgerError> {
        self.step(id, |slot| step::mark_enqueued(slot, token))
    }

    async fn abandon(&self, id: &str, token: &str) -> Result<bool, LedgerError> {
        self.step(id, |slot| step::abandon(slot, token))
    }

    async fn claim(&self, claim: &Record, create: bool, now_ms: i64) -> Result<Claim, LedgerError> {
        self.step(&claim.id, |slot| step::claim(slot, claim, create, now_ms))
    }

    async fn finish(
        &self,
        id: &str,
        token: &str,
        outcome: &Value,
        processed_at: &str,
    ) -> Result<bool, LedgerError> {
        self.step(id, |slot| step::finish(slot, token, outcome, processed_at))
    }

    async fn fail(
        &self,
        id: &str,
        token: &str,
        error: &str,
        partial: Option<&Value>,
    ) -> Result<bool, LedgerError> {
        self.step(id, |slot| step::fail(slot, token, error, partial))
    }

    async fn get(&self, id: &str) -> Result<Option<Record>, LedgerError> {
        Ok(self.lock()?.get(id).cloned())
    }

    async fn replay(&self, id: &str, now_ms: i64) -> Result<ReplayStart, LedgerError> {
        self.step(id, |slot| step::replay(slot, now_ms))
    }

    async fn note_replay(&self, id: &str, n: u32, now_ms: i64) -> Result<(), LedgerError> {
        drop(self.lock()?);
        let mut notes = self
            .notes
            .lock()
            .map_err(|_| LedgerError::Unavailable("memory ledger lock poisoned".into()))?;
        notes.push(Noted {
            at: crate::clock::rfc3339(now_ms),
            id: id.to_string(),
            n,
        });
        Ok(())
    }

    async fn replays_since(&self, since: &str) -> Result<Vec<Noted>, LedgerError> {
        drop(self.lock()?);
        let notes = self
            .notes
            .lock()
            .map_err(|_| LedgerError::Unavailable("memory ledger lock poisoned".into()))?;
        let mut found: Vec<Noted> = notes
            .iter()
            .filter(|n| n.at.as_str() >= since)
            .cloned()
            .collect();
        found.sort();
        Ok(found)
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
