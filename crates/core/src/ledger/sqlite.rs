//! The ledger on the embedded SQLite store: the rules of `ledger` applied inside one immediate
//! transaction each, so they are as atomic as DynamoDB's conditional writes.

use super::{
    cursor_after, may_begin, parse_cursor, step, Begin, Claim, Ledger, LedgerError, Noted, Page,
    Record, ReplayStart, Selection,
};
use crate::sqlite::Db;
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;

#[derive(Clone)]
pub struct SqliteLedger {
    db: Db,
}

const COLUMNS: &str = "id, status, type, body_sha256, organization_id, run_id, received_at, \
    lease_until, lease_token, attempts, outcome, error, processed_at, expires_at, delivery_token, \
    body, replays";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Record> {
    let status: String = row.get(1)?;
    let outcome: Option<String> = row.get(10)?;
    let bad = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    Ok(Record {
        id: row.get(0)?,
        status: status
            .parse()
            .map_err(|e: LedgerError| bad(1, e.to_string()))?,
        kind: row.get(2)?,
        body_sha256: row.get(3)?,
        organization_id: row.get(4)?,
        run_id: row.get(5)?,
        received_at: row.get(6)?,
        lease_until: row.get(7)?,
        lease_token: row.get(8)?,
        attempts: row.get(9)?,
        outcome: outcome
            .map(|o| serde_json::from_str(&o))
            .transpose()
            .map_err(|e| bad(10, e.to_string()))?,
        error: row.get(11)?,
        processed_at: row.get(12)?,
        expires_at: row.get(13)?,
        body: row.get(15)?,
        replays: row.get(16)?,
        delivery_token: row.get(14)?,
    })
}

fn read(tx: &Connection, id: &str) -> rusqlite::Result<Option<Record>> {
    tx.prepare_cached(&format!("SELECT {COLUMNS} FROM events WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

fn write(tx: &Connection, r: &Record) -> rusqlite::Result<()> {
    let outcome = r.outcome.as_ref().map(Value::to_string);
    tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO events ({COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
    ))?
    .execute(params![
        r.id,
        r.status.as_str(),
        r.kind,
        r.body_sha256,
        r.organization_id,
        r.run_id,
        r.received_at,
        r.lease_until,
        r.lease_token,
        r.attempts,
        outcome,
        r.error,
        r.processed_at,
        r.expires_at,
        r.delivery_token,
        r.body,
        r.replays
    ])?;
    Ok(())
}

impl SqliteLedger {
    pub fn new(db: Db) -> SqliteLedger {
        SqliteLedger { db }
    }

    /// Ends every lease: on start-up, the leases of a process that died (the data dir's lock
    /// proves none is alive), so its events are taken over at once. Returns how many.
    pub async fn release_leases(&self) -> Result<usize, LedgerError> {
        self.db
            .transaction(|tx| {
                tx.prepare_cached(
                    "UPDATE events SET lease_until = 0 \
                     WHERE status IN ('received', 'processing') AND lease_until > 0",
                )?
                .execute([])
            })
            .await
            .map_err(LedgerError::Unavailable)
    }

    /// Runs one [`step`] on the record of `id` inside one immediate transaction, and writes
    /// (or deletes) the record if the step changed it.
    async fn step<T: Send + 'static>(
        &self,
        id: &str,
        step: impl FnOnce(&mut Option<Record>) -> T + Send + 'static,
    ) -> Result<T, LedgerError> {
        let id = id.to_string();
        self.db
            .transaction(move |tx| {
                let before = read(tx, &id)?;
                let mut slot = before.clone();
                let out = step(&mut slot);
                if slot != before {
                    match &slot {
                        Some(record) => write(tx, record)?,
                        None => {
                            tx.prepare_cached("DELETE FROM events WHERE id = ?1")?
                                .execute([&id])?;
                        }
                    }
                }
                Ok(out)
            })
            .await
            .map_err(LedgerError::Unavailable)
    }
}

#[async_trait]
impl Ledger for SqliteLedger {
    async fn begin(&self, record: &Record, now_ms: i64) -> Result<Begin, LedgerError> {
        // A duplicate (or a conflict, or an id in progress) is answered from a read connection,
        // never queued behind the writer's backlog. The record it found was committed, and no
        // transition makes such a record beginnable again except its lease or retention running
        // out: then, as when the read fails, the writer decides.
        let id = record.id.clone();
        if let Ok(Some(existing)) = self.db.read(move |conn| read(conn, &id)) {
            if !may_begin(Some(&existing), now_ms) {
                return Ok(Begin::Exists(Box::new(existing)));
            }
        }
        let record = record.clone();
        let id = record.id.clone();
        self.step(&id, move |slot| step::begin(slot, &record, now_ms))
            .await
    }

    async fn mark_enqueued(&self, id: &str, token: &str) -> Result<bool, LedgerError> {
        let token = token.to_string();
        self.step(id, move |slot| step::mark_enqueued(slot, &token))
            .await
    }

    async fn abandon(&self, id: &str, token: &str) -> Result<bool, LedgerError> {
        let token = token.to_string();
        self.step(id, move |slot| step::abandon(slot, &token)).await
    }

    async fn claim(&self, claim: &Record, create: bool, now_ms: i64) -> Result<Claim, LedgerError> {
        let claim = claim.clone();
        let id = claim.id.clone();
        self.step(&id, move |slot| step::claim(slot, &claim, create, now_ms))
            .await
    }

    async fn finish(
        &self,
        id: &str,
        token: &str,
        outcome: &Value,
        processed_at: &str,
    ) -> Result<bool, LedgerError> {
        let (token, outcome, at) = (token.to_string(), outcome.clone(), processed_at.to_string());
        self.step(id, move |slot| step::finish(slot, &token, &outcome, &at))
            .await
    }

    async fn fail(
        &self,
        id: &str,
        token: &str,
        error: &str,
        partial: Option<&Value>,
    ) -> Result<bool, LedgerError> {
        let (token, error, partial) = (token.to_string(), error.to_string(), partial.cloned());
        self.step(id, move |slot| {
            step::fail(slot, &token, &error, partial.as_ref())
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Record>, LedgerError> {
        // Every write was committed before its caller heard of it, so a reader sees it.
        self.db
            .read(|conn| read(conn, id))
            .map_err(LedgerError::Unavailable)
    }

    async fn replay(&self, id: &str, now_ms: i64) -> Result<ReplayStart, LedgerError> {
        self.step(id, move |slot| step::replay(slot, now_ms)).await
    }

    async fn note_replay(&self, id: &str, n: u32, now_ms: i64) -> Result<(), LedgerError> {
        let (id, at) = (id.to_string(), crate::clock::rfc3339(now_ms));
        let expired = crate::clock::rfc3339(now_ms - super::NOTE_SECONDS * 1000);
        self.db
            .transaction(move |tx| {
                tx.prepare_cached("DELETE FROM replays WHERE replayed_at < ?1")?
                    .execute([&expired])?;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO replays (id, n, replayed_at) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, n, at])?;
                Ok(())
            })
            .await
            .map_err(LedgerError::Unavailable)
    }

    async fn replays_since(&self, since: &str) -> Result<Vec<Noted>, LedgerError> {
        let since = since.to_string();
        self.db
            .read(move |tx| {
                let mut stmt = tx.prepare_cached(
                    "SELECT replayed_at, id, n FROM replays WHERE replayed_at >= ?1 \
                     ORDER BY replayed_at, id, n",
                )?;
                let rows = stmt.query_map([since], |row| {
                    Ok(Noted {
                        at: row.get(0)?,
                        id: row.get(1)?,
                        n: row.get(2)?,
                    })
                })?;
                rows.collect::<rusqlite::Result<Vec<Noted>>>()
            })
            .map_err(LedgerError::Unavailable)
    }

    async fn list(&self, selection: &Selection, cursor: Option<&str>) -> Result<Page, LedgerError> {
        let after = cursor.map(parse_cursor).transpose()?;
        let statuses: Option<String> = (!selection.statuses.is_empty()).then(|| {
            let names: Vec<&str> = selection.statuses.iter().map(|s| s.as_str()).collect();
            format!(",{},", names.join(","))
        });
        let selection = selection.clone();
        let limit = selection.limit;
        let (after_at, after_id) = after.unzip();
        let mut records = self
            .db
            .read(move |tx| {
                // The index on (received_at, id) serves the order and the time bounds.
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM events \
                     WHERE (?1 IS NULL OR received_at >= ?1) AND (?2 IS NULL OR received_at < ?2) \
                       AND (?3 IS NULL OR type = ?3) \
                       AND (?4 IS NULL OR instr(?4, ',' || status || ',') > 0) \
                       AND (?5 IS NULL OR received_at < ?5 OR (received_at = ?5 AND id < ?6)) \
                     ORDER BY received_at DESC, id DESC LIMIT ?7"
                ))?;
                let rows = stmt.query_map(
                    params![
                        selection.since,
                        selection.until,
                        selection.kind,
                        statuses,
                        after_at,
                        after_id,
                        (limit + 1) as i64
                    ],
                    from_row,
                )?;
                rows.collect::<rusqlite::Result<Vec<Record>>>()
            })
            .map_err(LedgerError::Unavailable)?;
        let more = records.len() > limit;
        records.truncate(limit);
        let next = more.then(|| records.last().map(cursor_after)).flatten();
        Ok(Page { records, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Begin, Status};

    fn record(id: &str) -> Record {
        Record {
            id: id.into(),
            status: Status::Processed,
            kind: "run.completed".into(),
            body_sha256: "00".into(),
            organization_id: None,
            run_id: None,
            received_at: "2026-01-01T00:00:00.000Z".into(),
            lease_until: 0,
            lease_token: Some("t".into()),
            delivery_token: Some("t".into()),
            attempts: 0,
            outcome: None,
            error: None,
            processed_at: None,
            expires_at: i64::MAX / 2000,
            body: Some("{}".into()),
            replays: 0,
        }
    }

    /// A duplicate's lookup, `get` and `list` answer while the writer is stuck in a call; only
    /// a delivery that may write waits for it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn duplicates_and_reads_never_wait_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = SqliteLedger::new(Db::open(dir.path()).unwrap());
        let stored = record("evt_dup");
        let mut pending = stored.clone();
        pending.status = Status::Received;
        assert_eq!(ledger.begin(&pending, 0).await.unwrap(), Begin::Started);
        ledger
            .db
            .transaction(move |tx| write(tx, &stored))
            .await
            .unwrap();

        // Hold the writer in a call until the reads below have answered.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (entered, writer_busy) = tokio::sync::oneshot::channel::<()>();
        let db = ledger.db.clone();
        let stuck = tokio::spawn(async move {
            db.transaction(move |_| {
                let _ = entered.send(());
                let _ = held.recv();
                Ok(())
            })
            .await
        });
        writer_busy.await.unwrap();
        let new = record("evt_new");
        let mut new_pending = new.clone();
        new_pending.status = Status::Received;
        let waiting = {
            let ledger = ledger.clone();
            tokio::spawn(async move { ledger.begin(&new_pending, 0).await })
        };

        let within = std::time::Duration::from_secs(30);
        let mut duplicate = record("evt_dup");
        duplicate.status = Status::Received;
        let found = tokio::time::timeout(within, ledger.begin(&duplicate, 0))
            .await
            .expect("a duplicate waited for the writer");
        match found.unwrap() {
            Begin::Exists(old) => assert_eq!(old.status, Status::Processed),
            other => panic!("{other:?}"),
        }
        let got = tokio::time::timeout(within, ledger.get("evt_dup")).await;
        assert_eq!(
            got.expect("get waited").unwrap().unwrap().status,
            Status::Processed
        );
        let selection = Selection {
            limit: 10,
            ..Selection::default()
        };
        let page = tokio::time::timeout(within, ledger.list(&selection, None)).await;
        assert_eq!(page.expect("list waited").unwrap().records.len(), 1);
        // The new event's begin is a write: it is still queued behind the stuck call.
        assert!(!waiting.is_finished());

        release.send(()).unwrap();
        stuck.await.unwrap().unwrap();
        assert_eq!(waiting.await.unwrap().unwrap(), Begin::Started);
        assert_eq!(
            ledger.get("evt_new").await.unwrap().unwrap().status,
            Status::Received
        );
    }
}
