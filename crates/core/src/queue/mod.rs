//! The queue that carries accepted events from the receiver to the worker. A message body is the
//! event's raw, verified JSON body, byte for byte: the worker re-reads the envelope from it.

pub mod memory;
pub mod sqs;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum QueueError {
    #[error("the queue is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Sends one event; `Ok` only once the queue has durably accepted it.
    async fn send(&self, id: &str, body: &[u8]) -> Result<(), QueueError>;
}
