//! The embedded store's database: one SQLite file in the data dir holding the ledger (`events`)
//! and the queue with its dead-letter state (`messages`). WAL with `synchronous = FULL`: a
//! transaction that returned is on disk, so a 200 is never answered for a record or message a
//! crash could lose.
//!
//! Group commit: one writer thread owns the connection and runs every call. It takes all the
//! calls that queued up while the previous commit was being synced, runs each in its own
//! savepoint (a failing call rolls back alone) inside one immediate transaction, commits once,
//! and only then answers each call. Concurrent deliveries share one fsync instead of paying one
//! each, and no caller hears of a write before the commit that holds it returned.
//!
//! Reads that decide nothing by themselves (a duplicate's lookup, `get`, `list`) run on
//! read-only connections instead ([`Db::read`]): in WAL mode a reader sees every transaction
//! committed before it began and neither waits for the writer nor holds it up, so a duplicate is
//! answered while the writer works off a backlog.

use rusqlite::OpenFlags;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::oneshot;

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
    expires_at      INTEGER NOT NULL,
    delivery_token  TEXT,
    body            TEXT,
    replays         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_received ON events (received_at, id);
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
CREATE TABLE IF NOT EXISTS replays (
    id          TEXT NOT NULL,
    n           INTEGER NOT NULL,
    replayed_at TEXT NOT NULL,
    PRIMARY KEY (id, n)
);
CREATE INDEX IF NOT EXISTS replays_at ON replays (replayed_at);
";

/// Brings a store made by an earlier version up to the current schema.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let columns = [
        ("delivery_token", "TEXT"),
        ("body", "TEXT"),
        ("replays", "INTEGER NOT NULL DEFAULT 0"),
    ];
    for (name, kind) in columns {
        let present: bool = conn.query_row(
            "SELECT COUNT(*) FROM pragma_table_info('events') WHERE name = ?1",
            [name],
            |row| row.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if !present {
            conn.execute_batch(&format!("ALTER TABLE events ADD COLUMN {name} {kind}"))?;
        }
    }
    Ok(())
}

/// The database file's name inside the data dir.
pub const FILE_NAME: &str = "zofhook.db";

#[derive(Debug, thiserror::Error)]
#[error("the embedded store at {path}: {source}")]
pub struct OpenError {
    pub path: String,
    #[source]
    pub source: rusqlite::Error,
}

/// Most calls one commit takes; a bound on how long the first caller of a batch waits.
const MAX_BATCH: usize = 256;

/// A call queued for the writer thread: runs on the open transaction's savepoint (or is told why
/// there is none), and returns whether its writes are to be kept and what answers the caller
/// once the batch's commit has ended.
type Job = Box<dyn FnOnce(Result<&Connection, &str>) -> (bool, Answer) + Send>;
/// Answers a call with its value, or with the commit's error if the commit failed.
type Answer = Box<dyn FnOnce(Result<(), String>) + Send>;

#[derive(Clone)]
pub struct Db {
    // Field order matters: the last handle closes the read connections first, then drops its
    // sender, which ends the writer's loop, and then `_writer`, which waits for the writer to
    // close the database. The writer's connection must be the last one open: only the last
    // connection's close checkpoints the WAL into the database file and deletes it.
    readers: Arc<Readers>,
    jobs: mpsc::Sender<Job>,
    commits: Arc<AtomicU64>,
    _writer: Arc<Writer>,
}

/// Most idle read connections kept open; more are opened while many reads run at once.
const MAX_IDLE_READERS: usize = 8;

/// The read-only connections, opened on demand and kept for the next read.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn take(&self) -> rusqlite::Result<Connection> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        if let Some(conn) = idle {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
    }
}

/// The writer thread, joined when the last `Db` handle is dropped: the connection then closes
/// cleanly (checkpointing the WAL into the database file) before the process exits.
struct Writer(Option<std::thread::JoinHandle<()>>);

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            let _ = thread.join();
        }
    }
}

impl Db {
    /// Opens (creating if needed) the store in `dir`, and starts its writer thread.
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
        migrate(&conn).map_err(wrap)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let commits = Arc::new(AtomicU64::new(0));
        let counted = commits.clone();
        let thread = std::thread::Builder::new()
            .name("zofhook-store".into())
            .spawn(move || writer(conn, queue, &counted))
            .map_err(|e| OpenError {
                path: path.display().to_string(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        Ok(Db {
            readers: Arc::new(Readers {
                path,
                idle: Mutex::new(Vec::new()),
            }),
            jobs,
            commits,
            _writer: Arc::new(Writer(Some(thread))),
        })
    }

    /// Runs `f` on a read-only connection, now, without waiting for the writer: it sees every
    /// transaction committed before it, and none of a batch still being written. For reads
    /// whose answer stands on its own; a read that decides a write belongs in [`Db::transaction`].
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, String> {
        let conn = self.readers.take().map_err(|e| e.to_string())?;
        let value = f(&conn).map_err(|e| e.to_string());
        self.readers.give_back(conn);
        value
    }

    /// How many transactions the writer has committed (each is one fsync of the WAL).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Runs `f` atomically (in its own savepoint of the writer's current transaction) and
    /// returns its value once the transaction holding it has committed.
    pub async fn transaction<T, F>(&self, f: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<Result<T, String>>();
        let job: Job = Box::new(move |conn: Result<&Connection, &str>| {
            let value = match conn {
                Ok(conn) => std::panic::catch_unwind(AssertUnwindSafe(|| {
                    f(conn).map_err(|e| e.to_string())
                }))
                .unwrap_or_else(|_| Err("the store call panicked".to_string())),
                Err(why) => Err(why.to_string()),
            };
            let keep = value.is_ok();
            let answer: Answer = Box::new(move |committed: Result<(), String>| {
                // The caller may have given up (its deadline); then nobody is waiting.
                let _ = answer.send(committed.and(value));
            });
            (keep, answer)
        });
        self.jobs
            .send(job)
            .map_err(|_| "the store's writer has stopped".to_string())?;
        answered
            .await
            .map_err(|_| "the store's writer has stopped".to_string())?
    }
}

/// The writer thread: a batch of whatever calls are queued, one transaction, one commit.
/// Ends when every `Db` handle is gone.
fn writer(mut conn: Connection, queue: mpsc::Receiver<Job>, commits: &AtomicU64) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                // Not run: a savepoint outside a transaction would commit on its own.
                let why = format!("the store could not begin a transaction: {e}");
                for job in batch {
                    job(Err(&why)).1(Ok(()));
                }
                continue;
            }
        };
        let answers: Vec<Answer> = batch.into_iter().map(|job| run(&mut tx, job)).collect();
        // A failed commit drops `tx`, which rolls back whatever is left of the transaction.
        let committed = tx.commit().map_err(|e| e.to_string());
        if committed.is_ok() {
            commits.fetch_add(1, Ordering::Relaxed);
        }
        for answer in answers {
            answer(committed.clone());
        }
    }
}

/// One call in its own savepoint: released if the call succeeded, rolled back alone if not.
fn run(tx: &mut Transaction<'_>, job: Job) -> Answer {
    // SQLite may roll a whole transaction back on its own (a full disk, an I/O error). The calls
    // after that must not run in autocommit mode, where each savepoint would commit alone; the
    // failed COMMIT answers the earlier ones.
    if tx.is_autocommit() {
        return job(Err("the store rolled the transaction back")).1;
    }
    let savepoint = match tx.savepoint() {
        Ok(savepoint) => savepoint,
        Err(e) => return job(Err(&e.to_string())).1,
    };
    let (keep, answer) = job(Ok(&savepoint));
    // `finish` applies the savepoint's default drop behaviour: roll back, then release.
    let ended = if keep {
        savepoint.commit()
    } else {
        savepoint.finish()
    };
    match ended {
        Ok(()) => answer,
        Err(e) => {
            let e = e.to_string();
            Box::new(move |_| answer(Err(e)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::OptionalExtension;

    /// A fresh directory, removed when the returned guard drops.
    fn dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("zofhook-db-{name}-"))
            .tempdir()
            .unwrap()
    }

    fn insert(id: String) -> impl FnOnce(&Connection) -> rusqlite::Result<()> + Send {
        move |conn: &Connection| {
            conn.prepare_cached(
                "INSERT INTO events (id, status, type, body_sha256, received_at, lease_until, \
                 expires_at) VALUES (?1, 'received', 'run.completed', '', '', 0, 0)",
            )?
            .execute([id])?;
            Ok(())
        }
    }

    /// What another process sees: only committed rows.
    fn committed(dir: &Path, id: &str) -> bool {
        let other = Connection::open(dir.join(FILE_NAME)).unwrap();
        other
            .query_row("SELECT 1 FROM events WHERE id = ?1", [id], |_| Ok(()))
            .optional()
            .unwrap()
            .is_some()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_calls_share_commits_and_answer_only_after_theirs() {
        let tmp = dir("group");
        let dir = tmp.path().to_path_buf();
        let db = Db::open(&dir).unwrap();
        let mut calls = tokio::task::JoinSet::new();
        for n in 0..200 {
            let (db, dir) = (db.clone(), dir.clone());
            calls.spawn(async move {
                let id = format!("evt_{n}");
                db.transaction(insert(id.clone())).await.unwrap();
                // Answered: so another connection must already see it.
                assert!(committed(&dir, &id), "{id} answered before its commit");
            });
        }
        while let Some(done) = calls.join_next().await {
            done.unwrap();
        }
        let commits = db.commits();
        assert!(
            commits < 200,
            "200 concurrent calls took {commits} commits: no group commit"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failing_call_rolls_back_alone() {
        let tmp = dir("savepoint");
        let dir = tmp.path().to_path_buf();
        let db = Db::open(&dir).unwrap();
        let mut calls = tokio::task::JoinSet::new();
        for n in 0..50 {
            let db = db.clone();
            calls.spawn(async move {
                if n % 10 == 3 {
                    // Writes a row, then fails: its row must not survive.
                    let failing = move |conn: &Connection| {
                        insert(format!("evt_doomed_{n}"))(conn)?;
                        conn.execute_batch("INSERT INTO no_such_table VALUES (1)")
                    };
                    (n, db.transaction(failing).await.is_ok())
                } else if n % 10 == 7 {
                    let panicking = |_: &Connection| -> rusqlite::Result<()> { panic!("boom") };
                    (n, db.transaction(panicking).await.is_ok())
                } else {
                    (n, db.transaction(insert(format!("evt_{n}"))).await.is_ok())
                }
            });
        }
        while let Some(done) = calls.join_next().await {
            let (n, ok) = done.unwrap();
            assert_eq!(ok, n % 10 != 3 && n % 10 != 7, "call {n}");
        }
        for n in 0..50 {
            assert_eq!(
                committed(&dir, &format!("evt_{n}")),
                n % 10 != 3 && n % 10 != 7
            );
            assert!(!committed(&dir, &format!("evt_doomed_{n}")));
        }
        // The writer survived the panics.
        db.transaction(insert("evt_after".into())).await.unwrap();
        assert!(committed(&dir, "evt_after"));
    }

    #[tokio::test]
    async fn dropping_the_last_handle_closes_the_database_cleanly() {
        let tmp = dir("close");
        let dir = tmp.path().to_path_buf();
        let db = Db::open(&dir).unwrap();
        db.transaction(insert("evt_kept".into())).await.unwrap();
        assert!(dir.join(format!("{FILE_NAME}-wal")).exists());
        let other = db.clone();
        drop(db);
        other
            .transaction(insert("evt_kept_2".into()))
            .await
            .unwrap();
        // With read connections open in the pool too: they close before the writer.
        let found = other
            .read(|conn| conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0)))
            .unwrap();
        assert_eq!(found, 2);
        drop(other);
        // A clean close checkpoints the WAL into the database file and deletes it, so a
        // read-only data dir later still has a complete database file.
        assert!(!dir.join(format!("{FILE_NAME}-wal")).exists());
        assert!(committed(&dir, "evt_kept_2"));
    }

    #[tokio::test]
    async fn a_failed_begin_answers_every_call_with_the_error() {
        let tmp = dir("locked");
        let dir = tmp.path().to_path_buf();
        let db = Db::open(&dir).unwrap();
        db.transaction(insert("evt_before".into())).await.unwrap();
        // Another connection holds the write lock for longer than the busy timeout.
        let other = Connection::open(dir.join(FILE_NAME)).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let err = db
            .transaction(insert("evt_blocked".into()))
            .await
            .unwrap_err();
        assert!(err.contains("locked") || err.contains("busy"), "{err}");
        other.execute_batch("ROLLBACK").unwrap();
        assert!(!committed(&dir, "evt_blocked"));
        db.transaction(insert("evt_after".into())).await.unwrap();
        assert!(committed(&dir, "evt_after"));
    }
}
