//! The worker's slow work (docs/design.md section 5) behind one trait: reconcile the run with Zof's
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

/// The most an outcome takes on a record (its JSON). With the largest body (`MaxBodyBytes`,
/// 256 KiB), [`ERROR_MAX_BYTES`] and the rest of the record (under 4 KiB), a record stays far
/// below DynamoDB's 400 KB item limit (docs/aws-rules.md, `item-size`).
pub const OUTCOME_MAX_BYTES: usize = 64 * 1024;
/// The most an error message takes on a record.
pub const ERROR_MAX_BYTES: usize = 4 * 1024;
/// How much of each text field of a run too large to keep whole is kept.
const RUN_TEXT_MAX_CHARS: usize = 256;

/// The outcome as a record keeps it. Whole when its JSON fits [`OUTCOME_MAX_BYTES`]; otherwise
/// its `status` and `sinks` stay, and the run (Zof's answer) keeps its top-level fields that are
/// not lists or objects (texts cut to 256 characters) as long as they fit, with
/// `"run_truncated": true`. The sinks always got the whole run; a retry reuses what is kept.
pub fn bounded(outcome: Value) -> Value {
    if json_len(&outcome) <= OUTCOME_MAX_BYTES {
        return outcome;
    }
    let Value::Object(mut map) = outcome else {
        return serde_json::json!({ "status": "unknown", "run_truncated": true });
    };
    let run = map.remove("run").unwrap_or(Value::Null);
    map.retain(|k, _| k == "status" || k == "sinks");
    if let Some(Value::String(status)) = map.get_mut("status") {
        *status = cut(status, RUN_TEXT_MAX_CHARS);
    }
    map.insert("run_truncated".into(), Value::Bool(true));
    map.insert("run".into(), Value::Object(serde_json::Map::new()));
    let mut size = json_len(&Value::Object(map.clone()));
    let mut kept = serde_json::Map::new();
    if let Value::Object(fields) = run {
        for (key, value) in fields {
            let value = match value {
                Value::String(text) => Value::String(cut(&text, RUN_TEXT_MAX_CHARS)),
                Value::Array(_) | Value::Object(_) => continue,
                scalar => scalar,
            };
            // "key":value, and a comma.
            let field = json_len(&Value::String(key.clone())) + json_len(&value) + 2;
            if size + field > OUTCOME_MAX_BYTES {
                break;
            }
            size += field;
            kept.insert(key, value);
        }
    }
    map.insert("run".into(), Value::Object(kept));
    Value::Object(map)
}

/// The most an EventBridge entry's detail takes: `PutEvents` refuses a request over 256 KB,
/// source and detail-type included.
pub const EVENT_DETAIL_MAX_BYTES: usize = 250 * 1024;

/// A notification body that fits `max` bytes: whole when it does; otherwise its run is cut as
/// [`bounded`] cuts it, with `"run_truncated": true` (the EventBridge entry of a run answer too
/// large for `PutEvents`). Every other field, `event_id` first, stays.
pub fn fitted(body: &Value, max: usize) -> Value {
    if json_len(body) <= max {
        return body.clone();
    }
    let cut =
        bounded(serde_json::json!({ "run": body.get("run").cloned().unwrap_or(Value::Null) }));
    let mut fitted = body.clone();
    if let Value::Object(map) = &mut fitted {
        map.insert("run".into(), cut.get("run").cloned().unwrap_or(Value::Null));
        map.insert("run_truncated".into(), Value::Bool(true));
    }
    fitted
}

/// An error message as a record keeps it: at most [`ERROR_MAX_BYTES`].
pub fn bounded_error(message: String) -> String {
    if message.len() <= ERROR_MAX_BYTES {
        return message;
    }
    let mut end = ERROR_MAX_BYTES - 3;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

fn cut(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

fn json_len(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |v| v.len())
}

/// What an attempt has achieved so far (a partial outcome), kept as it goes: an attempt stopped
/// by its work limit still records the sinks that succeeded, and the retry skips them.
#[derive(Debug, Default)]
pub struct Progress(std::sync::Mutex<Option<Value>>);

impl Progress {
    pub fn set(&self, partial: &Value) {
        if let Ok(mut held) = self.0.lock() {
            *held = Some(partial.clone());
        }
    }

    pub fn take(&self) -> Option<Value> {
        self.0.lock().ok().and_then(|mut held| held.take())
    }
}

#[async_trait]
pub trait Downstream: Send + Sync {
    /// Does the work for one claimed event and returns the outcome to record. `record` is the
    /// ledger record after the claim: its `outcome` holds what an earlier attempt achieved.
    /// Side effects must carry `event.id` as their idempotency key. Each sink that succeeds is
    /// written to `progress` at once, so that an attempt cut short keeps it.
    async fn deliver(
        &self,
        event: &Envelope,
        record: &Record,
        progress: &Progress,
    ) -> Result<Value, DownstreamError>;
}

/// Logs the event and records an outcome of status `unknown`.
#[derive(Debug, Default, Clone)]
pub struct LogDownstream;

#[async_trait]
impl Downstream for LogDownstream {
    async fn deliver(
        &self,
        event: &Envelope,
        _record: &Record,
        _progress: &Progress,
    ) -> Result<Value, DownstreamError> {
        tracing::info!(
            event_id = %event.id,
            event_type = %event.kind,
            run_id = event.run_id.as_deref().unwrap_or(""),
            "event handed on"
        );
        Ok(json!({ "status": "unknown", "run": null }))
    }
}

/// the notification body of docs/design.md section 5.
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
