//! [`Sinks`]: the Zof API reconciliation and the configured sinks, built from the settings.
//! Only the worker and `zofhook serve` need them (feature `sinks`): the receiver Lambda is built
//! without the HTTP client and the EventBridge SDK.

use super::{eventbridge, notification, notify, zof_api, Downstream, DownstreamError};
use crate::config::Config;
use crate::event::Envelope;
use crate::ledger::Record;
use async_trait::async_trait;
use serde_json::{json, Map, Value};

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
