//! The EventBridge sink: one `PutEvents` entry per processed event on `EventBusName`, source
//! `zof.webhooks`, detail-type the event type, detail the notification body, whose `event_id`
//! is what a consumer dedupes on (a `PutEvents` that landed but answered late is sent again).
//! A detail over `PutEvents`' 256 KB limit carries the run cut to its top-level fields
//! ([`super::fitted`], `"run_truncated": true`). Its calls have the downstream timeouts (`DownstreamTimeoutMs`), not the ledger's short ones
//! of the client it was built from.

use super::DownstreamError;
use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use serde_json::Value;
use std::time::Duration;

pub const SOURCE: &str = "zof.webhooks";

#[derive(Debug, Clone)]
pub struct EventBridgeSink {
    client: Client,
    bus: String,
    timeout: Duration,
}

impl EventBridgeSink {
    /// Publishes on `bus`; each call may take `timeout` (`DownstreamTimeoutMs`).
    pub fn new(client: Client, bus: impl Into<String>, timeout: Duration) -> EventBridgeSink {
        EventBridgeSink {
            client,
            bus: bus.into(),
            timeout,
        }
    }

    pub async fn publish(&self, detail_type: &str, detail: &Value) -> Result<(), DownstreamError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(detail_type)
            .detail(super::fitted(detail, super::EVENT_DETAIL_MAX_BYTES).to_string())
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .customize()
            .config_override(
                aws_sdk_eventbridge::config::Config::builder().timeout_config(
                    aws_sdk_eventbridge::config::timeout::TimeoutConfig::builder()
                        .connect_timeout(self.timeout)
                        .operation_attempt_timeout(self.timeout)
                        .operation_timeout(self.timeout)
                        .build(),
                ),
            )
            .send()
            .await
            .map_err(|e| {
                DownstreamError::retryable(format!("eventbridge: {}", DisplayErrorContext(&e)))
            })?;
        if out.failed_entry_count() > 0 {
            let why = out
                .entries()
                .iter()
                .filter_map(|e| {
                    Some(format!(
                        "{}: {}",
                        e.error_code()?,
                        e.error_message().unwrap_or("")
                    ))
                })
                .collect::<Vec<_>>()
                .join("; ");
            return Err(DownstreamError::retryable(format!(
                "eventbridge: entry failed: {why}"
            )));
        }
        Ok(())
    }
}
