//! The notification: a POST to `NotifyUrl` with `Idempotency-Key: <event id>`, as the JSON body
//! of docs/design.md section 5 or as a Slack-compatible `{"text": …}`.

use super::http::{self, RetryPolicy};
use super::DownstreamError;
use crate::config::NotifyFormat;
use serde_json::{json, Value};
use std::time::Duration;
use tracing::Instrument;

#[derive(Debug)]
pub struct Notifier {
    client: reqwest::Client,
    url: String,
    format: NotifyFormat,
    policy: RetryPolicy,
}

impl Notifier {
    pub fn new(
        url: &str,
        format: NotifyFormat,
        timeout: Duration,
        attempts: u32,
    ) -> Result<Notifier, DownstreamError> {
        Ok(Notifier {
            client: http::client(timeout)?,
            url: url.to_string(),
            format,
            policy: RetryPolicy::new(attempts),
        })
    }

    pub async fn send(&self, event_id: &str, notification: &Value) -> Result<(), DownstreamError> {
        let body = match self.format {
            NotifyFormat::Json => notification.clone(),
            NotifyFormat::Slack => json!({ "text": slack_text(notification) }),
        };
        http::send(&self.policy, "notify", || {
            self.client
                .post(&self.url)
                .header("Idempotency-Key", event_id)
                .json(&body)
        })
        // A retried POST is logged with the id it repeats (the same `Idempotency-Key`).
        .instrument(tracing::info_span!("notify", event_id))
        .await?;
        Ok(())
    }
}

/// One line naming the run, its organization, its state, and a link when the run has one.
pub fn slack_text(n: &Value) -> String {
    let text = |k: &str| n.get(k).and_then(Value::as_str).unwrap_or("?");
    let status = text("status");
    let mark = match status {
        "passed" => ":white_check_mark:",
        "failed" => ":x:",
        "canceled" => ":no_entry_sign:",
        _ => ":grey_question:",
    };
    let mut line = format!(
        "{mark} Zof run {} in {}: *{status}* (event {})",
        text("run_id"),
        text("organization_id"),
        text("event_id")
    );
    let link = ["url", "html_url", "web_url", "link"]
        .iter()
        .find_map(|k| n.get("run").and_then(|r| r.get(*k)).and_then(Value::as_str));
    if let Some(link) = link {
        line.push_str(&format!(" <{link}|open the run>"));
    }
    line
}
