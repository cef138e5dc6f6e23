//! The EventBridge sink: one `PutEvents` entry per processed event on `EventBusName`, source
//! `zof.webhooks`, detail-type the event type, detail the notification body.

use super::DownstreamError;
use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use serde_json::Value;

pub const SOURCE: &str = "zof.webhooks";

#[derive(Debug, Clone)]
pub struct EventBridgeSink {
    client: Client,
    bus: String,
}

impl EventBridgeSink {
    pub fn new(client: Client, bus: impl Into<String>) -> EventBridgeSink {
        EventBridgeSink {
            client,
            bus: bus.into(),
        }
    }

    pub async fn publish(&self, detail_type: &str, detail: &Value) -> Result<(), DownstreamError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(detail_type)
            .detail(detail.to_string())
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
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
