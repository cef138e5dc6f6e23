//! An in-memory queue for unit tests: records what was sent and can be made to fail.

use super::{Queue, QueueError};
use async_trait::async_trait;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<(String, Vec<u8>)>>,
    /// When set, every send fails as an unavailable queue would.
    pub down: AtomicBool,
}

impl MemoryQueue {
    pub fn new() -> MemoryQueue {
        MemoryQueue::default()
    }

    /// Every message sent so far, oldest first.
    pub fn sent(&self) -> Vec<(String, Vec<u8>)> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    /// As SQS: the receive pipeline's tests run the path the Lambda runs.
    fn overlaps_put(&self) -> bool {
        true
    }

    async fn send(&self, id: &str, body: &[u8]) -> Result<(), QueueError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(QueueError::Unavailable("memory queue is down".into()));
        }
        self.sent
            .lock()
            .map_err(|_| QueueError::Unavailable("memory queue lock poisoned".into()))?
            .push((id.to_string(), body.to_vec()));
        Ok(())
    }
}
