//! The worker's slow work (DESIGN.md section 5) behind one trait: reconcile the run with Zof's
//! API, then tell the configured sinks (the notify URL, an EventBridge bus). [`Sinks`] is what
//! the worker Lambda and `zofhook serve` run; [`LogDownstream`] only logs (tests).
//!
//! Each sink is called at most once per event that succeeds: the outcome records the sinks that
//! succeeded (`"sinks": {"notify": "ok"}`), a failed attempt stores that partial outcome, and the
//! retry skips them. Every side effect carries the event id (the `Idempotency-Key` header, the
//! `event_id` field) so a consumer can drop the rare repeat (a crash between a sink's success
//! and the ledger write).

pub mod eventbridge;
pub mod http;
pub mod notify;
pub mod zof_api;

use crate::config::Config;
use crate::event::Envelope;
use crate::ledger::Record;
use async_trait::async_trait;
use serde_json::{json, Map, Value};

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

/// Reconciliation and the sinks, as configured.
#[derive(Debug, Default)]
pub struct Sinks {
    pub zof: Option<zof_api::ZofApi>,
    pub notify: Option<notify::Notifier>,
    pub bus: Option<eventbridge::EventBridgeSink>,
}

const NOTIFY: &str = "notify";
const EVENTBRIDGE: &str = "eventbridge";

impl Sinks {
    /// From the settings; the Zof API needs `token` and EventBridge a client.
    pub fn from_config(
        config: &Config,
        token: Option<String>,
        eventbridge: Option<aws_sdk_eventbridge::Client>,
    ) -> Result<Sinks, DownstreamError> {
        let (timeout, attempts) = (config.downstream_timeout, config.downstream_max_attempts);
        let zof =
            match (&config.zof_api_base_url, token) {
                (Some(base), Some(token)) if !token.is_empty() => {
                    Some(zof_api::ZofApi::new(base, token, timeout, attempts)?)
                }
                (Some(_), _) => return Err(DownstreamError::permanent(
                    "ZofApiBaseUrl is set but there is no Zof API token (ZOFHOOK_ZOF_API_TOKEN)",
                )),
                (None, _) => None,
            };
        let notify = config
            .notify_url
            .as_deref()
            .map(|url| notify::Notifier::new(url, config.notify_format, timeout, attempts))
            .transpose()?;
        let bus = match (&config.event_bus_name, eventbridge) {
            (Some(bus), Some(client)) => Some(eventbridge::EventBridgeSink::new(client, bus)),
            (Some(_), None) => {
                return Err(DownstreamError::permanent(
                    "EventBusName is set but no EventBridge client was made",
                ))
            }
            (None, _) => None,
        };
        Ok(Sinks { zof, notify, bus })
    }

    async fn reconcile(
        &self,
        event: &Envelope,
        previous: &Value,
    ) -> Result<Value, DownstreamError> {
        // A run fetched by an earlier attempt is reused, so every sink hears the same state.
        if previous.get("run").is_some_and(Value::is_object) {
            return Ok(previous["run"].clone());
        }
        match (&self.zof, &event.run_id) {
            (Some(api), Some(run_id)) => api.run(run_id).await,
            _ => Ok(Value::Null),
        }
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

#[async_trait]
impl Downstream for Sinks {
    async fn deliver(&self, event: &Envelope, record: &Record) -> Result<Value, DownstreamError> {
        let previous = record.outcome.clone().unwrap_or(Value::Null);
        let mut done: Map<String, Value> = previous
            .get("sinks")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let run = self.reconcile(event, &previous).await.map_err(|mut e| {
            e.partial = previous.is_object().then(|| previous.clone());
            e
        })?;
        let status = if run.is_null() {
            "unknown".to_string()
        } else {
            zof_api::run_state(&run)
        };
        let body = notification(event, &status, &run);
        let mut failures = Vec::new();
        let mut permanent = false;
        if let Some(notifier) = &self.notify {
            if done.get(NOTIFY) != Some(&json!("ok")) {
                match notifier.send(&event.id, &body).await {
                    Ok(()) => {
                        done.insert(NOTIFY.into(), json!("ok"));
                    }
                    Err(e) => {
                        permanent |= e.permanent;
                        failures.push(e.message);
                    }
                }
            }
        }
        if let Some(bus) = &self.bus {
            if done.get(EVENTBRIDGE) != Some(&json!("ok")) {
                match bus.publish(&event.kind, &body).await {
                    Ok(()) => {
                        done.insert(EVENTBRIDGE.into(), json!("ok"));
                    }
                    Err(e) => {
                        permanent |= e.permanent;
                        failures.push(e.message);
                    }
                }
            }
        }
        let outcome = json!({ "status": status, "run": run, "sinks": done });
        if failures.is_empty() {
            Ok(outcome)
        } else {
            Err(DownstreamError {
                message: failures.join("; "),
                permanent,
                partial: Some(outcome),
            })
        }
    }
}
