//! The embedded store's database: one SQLite file in the data dir holding the ledger (`events`)
//! and the queue with its dead-letter state (`messages`). WAL with `synchronous = FULL`: a
//! transaction that returned is on disk, so a 200 is never answered for a record or message a
//! crash could lose.
//!
//! One connection behind a mutex, used from blocking threads: each call holds the lock for
//! exactly one transaction, so requests never wait on each other longer than a commit.

use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Mutex};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id              TEXT PRIMARY KEY,
    status          TEXT NOT NULL,
    type            TEXT NOT NULL,
    body_sha256     TEXT NOT NULL,
    organization_id TEXT,
    run_id          TEXT,
    received_at     TEXT NOT NULL,
    lease_until     INTEGER NOT NULL,
    lease_token     TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    outcome         TEXT,
    error           TEXT,
    processed_at    TEXT,
    expires_at      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id      TEXT NOT NULL,
    body          BLOB NOT NULL,
    sent_at       INTEGER NOT NULL,
    visible_at    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT,
    dead          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (dead, visible_at, seq);
";

/// The database file's name inside the data dir.
pub const FILE_NAME: &str = "zofhook.db";

#[derive(Debug, thiserror::Error)]
#[error("the embedded store at {path}: {source}")]
pub struct OpenError {
    pub path: String,
    #[source]
    pub source: rusqlite::Error,
}

#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Db, OpenError> {
        let path = dir.join(FILE_NAME);
        let wrap = |source| OpenError {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(&path).map_err(wrap)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(wrap)?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .map_err(wrap)?;
        conn.execute_batch("PRAGMA synchronous = FULL;")
            .map_err(wrap)?;
        conn.execute_batch(SCHEMA).map_err(wrap)?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` in one immediate transaction on a blocking thread, and commits it.
    pub async fn transaction<T, F>(&self, f: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().map_err(|_| "store lock poisoned".to_string())?;
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| e.to_string())?;
            let value = f(&tx).map_err(|e| e.to_string())?;
            tx.commit().map_err(|e| e.to_string())?;
            Ok(value)
        })
        .await
        .map_err(|e| format!("store task failed: {e}"))?
    }
}
