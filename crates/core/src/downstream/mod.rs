//! The worker's slow work behind one trait (DESIGN.md section 5). Until the Zof API, notify and
//! EventBridge sinks land, [`LogDownstream`] records that the event was handed on.

use crate::event::Envelope;
use crate::ledger::Record;
use async_trait::async_trait;
use serde_json::{json, Value};

/// A failed attempt; the queue retries it, then dead-letters it.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct DownstreamError(pub String);

#[async_trait]
pub trait Downstream: Send + Sync {
    /// Does the work for one claimed event and returns the outcome to record. `record` is the
    /// ledger record after the claim: its `outcome` holds what an earlier attempt achieved.
    /// Side effects must carry `event.id` as their idempotency key.
    async fn deliver(&self, event: &Envelope, record: &Record) -> Result<Value, DownstreamError>;
}

/// Logs the event and records an outcome of status `unknown` (no reconciliation configured).
#[derive(Debug, Default, Clone)]
pub struct LogDownstream;

#[async_trait]
impl Downstream for LogDownstream {
    async fn deliver(&self, event: &Envelope, _record: &Record) -> Result<Value, DownstreamError> {
        tracing::info!(
            event_id = %event.id,
            event_type = %event.kind,
            run_id = event.run_id.as_deref().unwrap_or(""),
            "event handed on"
        );
        Ok(json!({ "status": "unknown", "run": null }))
    }
}
