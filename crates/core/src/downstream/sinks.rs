//! [`Sinks`]: the Zof API reconciliation and the configured sinks, built from the settings.
//! Only the worker and `zofhook serve` need them (feature `sinks`): the receiver Lambda is built
//! without the HTTP client and the EventBridge SDK.

#[cfg(feature = "eventbridge")]
use super::eventbridge;
use super::{notification, notify, zof_api, Downstream, DownstreamError, Progress, NOTIFY};
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
    #[cfg(feature = "eventbridge")]
    pub bus: Option<eventbridge::EventBridgeSink>,
}

/// What the EventBridge sink sends with: the SDK client, in a build with the feature
/// `eventbridge`; a type with no values in one without (`EventBusName` is then refused).
#[cfg(feature = "eventbridge")]
pub type BusClient = aws_sdk_eventbridge::Client;
#[cfg(not(feature = "eventbridge"))]
#[derive(Debug, Clone)]
pub enum BusClient {}

#[cfg(feature = "eventbridge")]
const EVENTBRIDGE: &str = "eventbridge";

impl Sinks {
    /// From the settings; the Zof API needs `token` and EventBridge a client.
    pub fn from_config(
        config: &Config,
        token: Option<String>,
        eventbridge: Option<BusClient>,
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
        #[cfg(feature = "eventbridge")]
        let bus = match (&config.event_bus_name, eventbridge) {
            (Some(bus), Some(client)) => {
                Some(eventbridge::EventBridgeSink::new(client, bus, timeout))
            }
            (Some(_), None) => {
                return Err(DownstreamError::permanent(
                    "EventBusName is set but no EventBridge client was made",
                ))
            }
            (None, _) => None,
        };
        #[cfg(not(feature = "eventbridge"))]
        let _ = eventbridge;
        #[cfg(not(feature = "eventbridge"))]
        if config.event_bus_name.is_some() {
            return Err(DownstreamError::permanent(
                "EventBusName needs a build with AWS support (cargo build --release -p zofhook --features aws)",
            ));
        }
        Ok(Sinks {
            zof,
            notify,
            #[cfg(feature = "eventbridge")]
            bus,
        })
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
    async fn deliver(
        &self,
        event: &Envelope,
        record: &Record,
        progress: &Progress,
    ) -> Result<Value, DownstreamError> {
        let previous = record.outcome.clone().unwrap_or(Value::Null);
        let mut done: Map<String, Value> = super::sinks_done(record.outcome.as_ref());
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
        let so_far =
            |done: &Map<String, Value>| json!({ "status": status, "run": run, "sinks": done });
        progress.set(&so_far(&done));
        let mut failures = Vec::new();
        let mut permanent = false;
        if let Some(notifier) = &self.notify {
            if !super::sink_done(&done, NOTIFY) {
                match notifier.send(&event.id, &body).await {
                    Ok(()) => {
                        done.insert(NOTIFY.into(), json!("ok"));
                        progress.set(&so_far(&done));
                    }
                    Err(e) => {
                        permanent |= e.permanent;
                        failures.push(e.message);
                    }
                }
            }
        }
        #[cfg(feature = "eventbridge")]
        if let Some(bus) = &self.bus {
            if !super::sink_done(&done, EVENTBRIDGE) {
                match bus.publish(&event.kind, &body).await {
                    Ok(()) => {
                        done.insert(EVENTBRIDGE.into(), json!("ok"));
                        progress.set(&so_far(&done));
                    }
                    Err(e) => {
                        permanent |= e.permanent;
                        failures.push(e.message);
                    }
                }
            }
        }
        let outcome = so_far(&done);
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
