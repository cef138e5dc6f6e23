//! The queue that carries accepted events from the receiver to the worker. A message body is the
//! event's raw, verified JSON body, byte for byte: the worker re-reads the envelope from it.

pub mod memory;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "aws")]
pub mod sqs;

use async_trait::async_trait;

pub use crate::backoff::Backoff;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum QueueError {
    #[error("the queue is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Sends one event; `Ok` only once the queue has durably accepted it.
    async fn send(&self, id: &str, body: &[u8]) -> Result<(), QueueError>;

    /// Whether the receiver sends while it records (true: a send is a network round trip, worth
    /// overlapping with the ledger's put; SQS) or only once the put has made the record its own
    /// (false: a local queue, whose send is a write like the put, so a duplicate writes nothing).
    fn overlaps_put(&self) -> bool {
        false
    }
}

/// A message taken from the queue, invisible to other consumers until acknowledged or its
/// visibility timeout ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// What acknowledges it (an SQS receipt handle, or the embedded queue's own).
    pub handle: String,
    pub body: Vec<u8>,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
    /// When it was sent (epoch milliseconds), if the queue says.
    pub sent_at_ms: Option<i64>,
}

/// The consumer side of the queue: what the in-process worker of `zofhook serve` polls.
#[async_trait]
pub trait Inbox: Send + Sync {
    /// Up to `max` messages; waits a little (long poll) when there are none.
    async fn receive(&self, max: usize) -> Result<Vec<Received>, QueueError>;
    /// Processed (or already processed): delete it.
    async fn ack(&self, message: &Received) -> Result<(), QueueError>;
    /// Not done: make it visible again later; after `MaxReceiveCount` receives it is dead-lettered.
    async fn retry(&self, message: &Received) -> Result<(), QueueError>;
    /// Moves every dead-lettered message back to the queue; returns how many.
    async fn redrive(&self) -> Result<usize, QueueError>;
}
