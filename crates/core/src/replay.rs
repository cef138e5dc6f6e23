//! Replay (docs/design.md section 8): events sent through again from their archived bodies. One rule
//! for every store: a conditional transition back to `enqueued` (never while a claim is live),
//! then the body to the queue; the worker processes it again under the same event id, so its
//! side effects carry the same idempotency key.

use crate::ledger::{Ledger, ReplayStart, Status};
use crate::queue::Queue;

/// What became of each id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub replayed: Vec<String>,
    /// Left as they are, with why.
    pub skipped: Vec<(String, String)>,
    pub not_found: Vec<String>,
    /// Moved back to `enqueued` but the queue refused the body: replay them again.
    pub failed: Vec<(String, String)>,
    /// Replayed, but the note that `zofhook listen --replayed` follows was not written.
    pub unnoted: Vec<(String, String)>,
}

impl Summary {
    /// One line per outcome kind, as `zofhook replay` prints them.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!("replayed {} event(s)", self.replayed.len())];
        if !self.skipped.is_empty() {
            lines.push(format!(
                "skipped {}: {}",
                self.skipped.len(),
                with_why(&self.skipped)
            ));
        }
        if !self.not_found.is_empty() {
            lines.push(format!(
                "not found {}: {}",
                self.not_found.len(),
                self.not_found.join(", ")
            ));
        }
        if !self.failed.is_empty() {
            lines.push(format!(
                "not sent {} (left enqueued; replay them again): {}",
                self.failed.len(),
                with_why(&self.failed)
            ));
        }
        if !self.unnoted.is_empty() {
            lines.push(format!(
                "replayed but not noted for `zofhook listen --replayed` {}: {}",
                self.unnoted.len(),
                with_why(&self.unnoted)
            ));
        }
        lines
    }
}

/// Replays `ids` in order.
/// `id (why), id (why)`.
fn with_why(pairs: &[(String, String)]) -> String {
    let each: Vec<String> = pairs
        .iter()
        .map(|(id, why)| format!("{id} ({why})"))
        .collect();
    each.join(", ")
}

pub async fn replay(
    ledger: &dyn Ledger,
    queue: &dyn Queue,
    ids: &[String],
    now_ms: i64,
) -> Result<Summary, crate::ledger::LedgerError> {
    let mut summary = Summary::default();
    for id in ids {
        match ledger.replay(id, now_ms).await? {
            ReplayStart::Started(record) => {
                let body = record.body.as_deref().unwrap_or_default();
                match queue.send(id, body.as_bytes()).await {
                    Ok(()) => {
                        summary.replayed.push(id.clone());
                        if let Err(e) = ledger.note_replay(id, record.replays, now_ms).await {
                            summary.unnoted.push((id.clone(), e.to_string()));
                        }
                    }
                    Err(e) => summary.failed.push((id.clone(), e.to_string())),
                }
            }
            ReplayStart::NotFound => summary.not_found.push(id.clone()),
            ReplayStart::NoBody => summary
                .skipped
                .push((id.clone(), "no archived body".to_string())),
            ReplayStart::Live(status) => summary.skipped.push((
                id.clone(),
                match status {
                    Status::Received => "a delivery holds it".to_string(),
                    _ => "a worker's claim is live".to_string(),
                },
            )),
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::memory::MemoryLedger;
    use crate::ledger::Record;
    use crate::queue::memory::MemoryQueue;

    fn record(id: &str, status: Status, lease_until: i64, body: Option<&str>) -> Record {
        Record {
            id: id.into(),
            status,
            kind: "run.completed".into(),
            body_sha256: "00".into(),
            organization_id: None,
            run_id: None,
            received_at: "2026-01-01T00:00:00.000Z".into(),
            lease_until,
            lease_token: Some("t".into()),
            delivery_token: None,
            attempts: 2,
            outcome: Some(serde_json::json!({"sinks": {"notify": "ok"}})),
            error: None,
            processed_at: None,
            expires_at: i64::MAX,
            body: body.map(str::to_string),
            replays: 0,
        }
    }

    #[tokio::test]
    async fn replays_what_it_may_and_says_why_not_the_rest() {
        let now = 1_000_000;
        let ledger = MemoryLedger::new();
        ledger.insert(record("done", Status::Processed, 0, Some("{\"a\":1}")));
        ledger.insert(record("busy", Status::Processing, now + 1, Some("{}")));
        ledger.insert(record("stale", Status::Processing, now - 1, Some("{}")));
        ledger.insert(record("old", Status::Failed, 0, None));
        let queue = MemoryQueue::default();
        let ids: Vec<String> = ["done", "busy", "stale", "old", "gone"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let summary = replay(&ledger, &queue, &ids, now).await.unwrap();
        assert_eq!(summary.replayed, ["done", "stale"]);
        assert_eq!(
            summary.skipped,
            [
                ("busy".to_string(), "a worker's claim is live".to_string()),
                ("old".to_string(), "no archived body".to_string())
            ]
        );
        assert_eq!(summary.not_found, ["gone"]);
        let done = ledger.get("done").await.unwrap().unwrap();
        assert_eq!(
            (done.status, done.replays, done.attempts, done.outcome),
            (Status::Enqueued, 1, 2, None)
        );
        assert_eq!(queue.sent()[0].1, b"{\"a\":1}".to_vec());
        // The skipped are as they were.
        assert_eq!(
            ledger.get("busy").await.unwrap().unwrap().status,
            Status::Processing
        );
    }
}
