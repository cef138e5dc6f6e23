//! The worker's slow work (DESIGN.md section 5) behind one trait: reconcile the run with Zof's
//! API, then tell the configured sinks (the notify URL, an EventBridge bus). [`Sinks`] is what
//! the worker Lambda and `zofhook serve` run; [`LogDownstream`] only logs (tests).
//!
//! Each sink is called at most once per event that succeeds: the outcome records the sinks that
//! succeeded (`"sinks": {"notify": "ok"}`), a failed attempt stores that partial outcome, and the
//! retry skips them. Every side effect carries the event id (the `Idempotency-Key` header, the
//! `event_id` field) so a consumer can drop the rare repeat (a crash between a sink's success
//! and the ledger write).

#[cfg(feature = "eventbridge")]
pub mod eventbridge;
#[cfg(feature = "sinks")]
pub mod http;
#[cfg(feature = "sinks")]
pub mod notify;
#[cfg(feature = "sinks")]
mod sinks;
#[cfg(feature = "sinks")]
pub mod zof_api;

#[cfg(feature = "sinks")]
pub use sinks::Sinks;

use crate::event::Envelope;
use crate::ledger::Record;
use async_trait::async_trait;
use serde_json::{json, Value};

/// A failed attempt; the queue retries it, then dead-letters it.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[error("{message}")]
pub struct DownstreamError {
    pub message: String,
    /// Retrying cannot help (401, 403, 404 …): the queue's `MaxReceiveCount` ends it in the DLQ.
    pub permanent: bool,
    /// What this attempt achieved, stored on the record for the retry.
    pub partial: Option<Value>,
}

impl DownstreamError {
    pub fn retryable(message: impl Into<String>) -> DownstreamError {
        DownstreamError {
            message: message.into(),
            permanent: false,
            partial: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> DownstreamError {
        DownstreamError {
            permanent: true,
            ..DownstreamError::retryable(message)
        }
    }
}

/// The notify URL's name in the outcome's `"sinks"`.
pub const NOTIFY: &str = "notify";

/// The sinks an earlier attempt recorded as done: the outcome's `"sinks"` object, whose
/// `"ok"` entries the retry skips (`{"sinks": {"notify": "ok"}}`).
pub fn sinks_done(previous: Option<&Value>) -> serde_json::Map<String, Value> {
    previous
        .and_then(|p| p.get("sinks"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Whether `done` ([`sinks_done`]) records the sink `name` as done, so it is not called again.
pub fn sink_done(done: &serde_json::Map<String, Value>, name: &str) -> bool {
    done.get(name).and_then(Value::as_str) == Some("ok")
}

#[async_trait]
pub trait Downstream: Send + Sync {
    /// Does the work for one claimed event and returns the outcome to record. `record` is the
    /// ledger record after the claim: its `outcome` holds what an earlier attempt achieved.
    /// Side effects must carry `event.id` as their idempotency key.
    async fn deliver(&self, event: &Envelope, record: &Record) -> Result<Value, DownstreamError>;
}

/// Logs the event and records an outcome of status `unknown`.
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

/// DESIGN.md's notification body.
pub fn notification(event: &Envelope, status: &str, run: &Value) -> Value {
    json!({
        "event_id": event.id,
        "type": event.kind,
        "created": event.created,
        "organization_id": event.organization_id,
        "run_id": event.run_id,
        "status": status,
        "run": run,
    })
}
