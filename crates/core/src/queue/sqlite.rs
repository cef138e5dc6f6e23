//! The queue on the embedded SQLite store: messages with a visibility timeout, a receive count,
//! and a dead-letter state after `MaxReceiveCount` receives, like SQS with a redrive policy.

use super::{Backoff, Inbox, Queue, QueueError, Received};
use crate::clock::Clock;
use crate::sqlite::Db;
use async_trait::async_trait;
use rusqlite::params;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Longest wait of one `receive` when the queue is empty.
const POLL: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct SqliteQueue {
    db: Db,
    visibility_ms: i64,
    max_receive_count: u32,
    backoff: Backoff,
    arrived: Arc<Notify>,
    clock: Clock,
}

impl SqliteQueue {
    pub fn new(
        db: Db,
        visibility: Duration,
        max_receive_count: u32,
        backoff: Backoff,
        clock: Clock,
    ) -> SqliteQueue {
        SqliteQueue {
            db,
            visibility_ms: crate::clock::millis(visibility),
            max_receive_count,
            backoff,
            arrived: Arc::new(Notify::new()),
            clock,
        }
    }

    /// Messages waiting (visible or not) and dead-lettered.
    pub async fn depth(&self) -> Result<(u64, u64), QueueError> {
        self.db
            .transaction(|tx| {
                tx.query_row(
                    "SELECT COALESCE(SUM(dead = 0), 0), COALESCE(SUM(dead = 1), 0) FROM messages",
                    [],
                    |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64)),
                )
            })
            .await
            .map_err(QueueError::Unavailable)
    }

    /// Makes every message that a consumer had taken visible again now: on start-up, the
    /// consumers of a process that died (the data dir's lock proves none is alive). Returns how
    /// many. Messages waiting out a retry backoff keep their wait.
    pub async fn release_in_flight(&self) -> Result<usize, QueueError> {
        let now = (self.clock)();
        self.db
            .transaction(move |tx| {
                tx.prepare_cached(
                    "UPDATE messages SET visible_at = ?1, receipt = NULL \
                     WHERE dead = 0 AND receipt IS NOT NULL",
                )?
                .execute([now])
            })
            .await
            .map_err(QueueError::Unavailable)
    }

    async fn take(&self, max: usize) -> Result<Vec<Received>, QueueError> {
        let now = (self.clock)();
        let visibility = self.visibility_ms;
        let max_receives = i64::from(self.max_receive_count);
        self.db
            .transaction(move |tx| {
                let ready: Vec<(i64, Vec<u8>, i64, i64)> = tx
                    .prepare_cached(
                        "SELECT seq, body, receive_count, sent_at FROM messages \
                         WHERE dead = 0 AND visible_at <= ?1 ORDER BY seq LIMIT ?2",
                    )?
                    .query_map(params![now, max as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let mut taken = Vec::new();
                for (seq, body, count, sent_at) in ready {
                    if count >= max_receives {
                        tx.prepare_cached(
                            "UPDATE messages SET dead = 1, receipt = NULL WHERE seq = ?1",
                        )?
                        .execute([seq])?;
                        continue;
                    }
                    let receipt = uuid::Uuid::new_v4().to_string();
                    tx.prepare_cached(
                        "UPDATE messages SET receive_count = receive_count + 1, receipt = ?2, \
                         visible_at = ?3 WHERE seq = ?1",
                    )?
                    .execute(params![
                        seq,
                        receipt,
                        now.saturating_add(visibility)
                    ])?;
                    taken.push(Received {
                        handle: format!("{seq}:{receipt}"),
                        body,
                        receive_count: u32::try_from(count + 1).unwrap_or(u32::MAX),
                        sent_at_ms: Some(sent_at),
                    });
                }
                Ok(taken)
            })
            .await
            .map_err(QueueError::Unavailable)
    }
}

fn parse_handle(handle: &str) -> Result<(i64, String), QueueError> {
    handle
        .split_once(':')
        .and_then(|(seq, receipt)| Some((seq.parse().ok()?, receipt.to_string())))
        .ok_or_else(|| QueueError::Unavailable(format!("not a receipt of this queue: {handle}")))
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn send(&self, id: &str, body: &[u8]) -> Result<(), QueueError> {
        let (id, body, now) = (id.to_string(), body.to_vec(), (self.clock)());
        self.db
            .transaction(move |tx| {
                tx.prepare_cached(
                    "INSERT INTO messages (event_id, body, sent_at, visible_at) VALUES (?1, ?2, ?3, ?3)",
                )?
                .execute(params![id, body, now])
            })
            .await
            .map_err(QueueError::Unavailable)?;
        self.arrived.notify_waiters();
        Ok(())
    }
}

#[async_trait]
impl Inbox for SqliteQueue {
    async fn receive(&self, max: usize) -> Result<Vec<Received>, QueueError> {
        let arrived = self.arrived.notified();
        let taken = self.take(max).await?;
        if !taken.is_empty() {
            return Ok(taken);
        }
        // Nothing ready: wait for a send, or for a visibility timeout to end.
        let _ = tokio::time::timeout(POLL, arrived).await;
        self.take(max).await
    }

    async fn ack(&self, message: &Received) -> Result<(), QueueError> {
        let (seq, receipt) = parse_handle(&message.handle)?;
        self.db
            .transaction(move |tx| {
                tx.prepare_cached("DELETE FROM messages WHERE seq = ?1 AND receipt = ?2")?
                    .execute(params![seq, receipt])
            })
            .await
            .map_err(QueueError::Unavailable)?;
        Ok(())
    }

    async fn retry(&self, message: &Received) -> Result<(), QueueError> {
        let (seq, receipt) = parse_handle(&message.handle)?;
        let delay = self.backoff.delay(message.receive_count);
        let delay_ms = crate::clock::millis(delay);
        let visible_at = (self.clock)().saturating_add(delay_ms);
        self.db
            .transaction(move |tx| {
                tx.prepare_cached(
                    "UPDATE messages SET visible_at = ?3, receipt = NULL WHERE seq = ?1 AND receipt = ?2",
                )?
                .execute(params![seq, receipt, visible_at])
            })
            .await
            .map_err(QueueError::Unavailable)?;
        Ok(())
    }

    async fn redrive(&self) -> Result<usize, QueueError> {
        let now = (self.clock)();
        let moved = self
            .db
            .transaction(move |tx| {
                tx.prepare_cached(
                    "UPDATE messages SET dead = 0, receive_count = 0, receipt = NULL, visible_at = ?1 \
                     WHERE dead = 1",
                )?
                .execute([now])
            })
            .await
            .map_err(QueueError::Unavailable)?;
        self.arrived.notify_waiters();
        Ok(moved)
    }
}
