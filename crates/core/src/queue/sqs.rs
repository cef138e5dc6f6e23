//! The queue on SQS: one message per accepted event, its body the raw event JSON.

use super::{Backoff, Queue, QueueError};
use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::Client;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> SqsQueue {
        SqsQueue {
            client,
            url: url.into(),
        }
    }

    /// Opens the connection to SQS (TLS handshake, credentials, endpoint) with a read of the
    /// queue's ARN, so the first delivery does not pay for it. Failures are only logged.
    pub async fn warm_up(&self) {
        let read = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await;
        if let Err(e) = read {
            tracing::warn!(error = %DisplayErrorContext(&e), "queue warm-up failed");
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// The timeouts of a call that waits on purpose (a long poll): `timeout`, above its wait.
fn long_poll(timeout: Duration) -> aws_sdk_sqs::config::Builder {
    aws_sdk_sqs::config::Config::builder().timeout_config(
        aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(500))
            .operation_attempt_timeout(timeout)
            .operation_timeout(timeout)
            .build(),
    )
}

#[async_trait]
impl Queue for SqsQueue {
    fn overlaps_put(&self) -> bool {
        true
    }

    async fn send(&self, _id: &str, body: &[u8]) -> Result<(), QueueError> {
        // The receiver only enqueues verified JSON, which is UTF-8.
        let body = std::str::from_utf8(body)
            .map_err(|_| QueueError::Unavailable("message body is not UTF-8".into()))?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(DisplayErrorContext(&e).to_string()))?;
        Ok(())
    }
}

/// The consumer side on SQS (`zofhook serve --aws`): long polling, delete on success, and a
/// failed message's visibility set to the retry backoff, so it comes back after
/// `RetryBaseSeconds`, doubling, rather than after the whole visibility timeout.
/// Each receive asks for a visibility timeout equal to the processing lease, so a message comes
/// back exactly when another worker may take its claim over, whatever the queue's default.
#[derive(Debug, Clone)]
pub struct SqsInbox {
    client: Client,
    url: String,
    dlq_url: Option<String>,
    wait_seconds: i32,
    visibility_seconds: i32,
    backoff: Backoff,
    /// Per-attempt timeout of a long poll: its wait plus the time of an ordinary call, so an
    /// idle poll never times out on our side (a message handed to a receive that gave up would
    /// stay invisible for the whole visibility timeout).
    poll_timeout: Duration,
}

impl SqsInbox {
    pub fn new(
        client: Client,
        url: impl Into<String>,
        dlq_url: Option<String>,
        config: &crate::config::Config,
    ) -> SqsInbox {
        let wait_seconds = 2;
        SqsInbox {
            client,
            url: url.into(),
            dlq_url,
            wait_seconds,
            // SQS accepts 0 to 43200 seconds, the range ProcessingLeaseSeconds allows.
            visibility_seconds: seconds(config.processing_lease),
            backoff: config.backoff(),
            poll_timeout: Duration::from_secs(wait_seconds as u64) + config.store_timeout,
        }
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Whole seconds for SQS, within its 0 to 43200 range, rounded up: a backoff of 0.8 s (1 s less
/// jitter) is 1 s, never 0, which would put the message back at once.
fn seconds(d: Duration) -> i32 {
    let whole = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(whole).unwrap_or(43_200).min(43_200)
}

/// Sets a received message's visibility to the retry backoff after its `receive_count`-th
/// receive (`SqsInbox::retry`, which the worker Lambda and `serve --aws` share).
async fn back_off(
    client: &Client,
    queue_url: &str,
    receipt_handle: &str,
    backoff: &Backoff,
    receive_count: u32,
) -> Result<(), QueueError> {
    client
        .change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt_handle)
        .visibility_timeout(seconds(backoff.delay(receive_count)))
        .send()
        .await
        .map_err(unavailable)?;
    Ok(())
}

fn unavailable<E: std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
    e: aws_sdk_sqs::error::SdkError<E, R>,
) -> QueueError {
    QueueError::Unavailable(DisplayErrorContext(&e).to_string())
}

#[async_trait]
impl super::Inbox for SqsInbox {
    async fn receive(&self, max: usize) -> Result<Vec<super::Received>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(self.wait_seconds)
            .visibility_timeout(self.visibility_seconds)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp,
            )
            .customize()
            .config_override(long_poll(self.poll_timeout))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                use aws_sdk_sqs::types::MessageSystemAttributeName as Name;
                let attribute = |name: Name| m.attributes().and_then(|a| a.get(&name));
                let count = attribute(Name::ApproximateReceiveCount)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                Some(super::Received {
                    handle: m.receipt_handle()?.to_string(),
                    body: m.body().unwrap_or_default().as_bytes().to_vec(),
                    receive_count: count,
                    sent_at_ms: attribute(Name::SentTimestamp).and_then(|t| t.parse().ok()),
                })
            })
            .collect())
    }

    async fn ack(&self, message: &super::Received) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(&message.handle)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn retry(&self, message: &super::Received) -> Result<(), QueueError> {
        back_off(
            &self.client,
            &self.url,
            &message.handle,
            &self.backoff,
            message.receive_count,
        )
        .await
    }

    async fn redrive(&self) -> Result<usize, QueueError> {
        let dlq = self.dlq_url.as_deref().ok_or_else(|| {
            QueueError::Unavailable("no dead-letter queue URL given (--dlq-url)".into())
        })?;
        let mut moved = 0;
        loop {
            // A long poll asks every SQS server, so its empty answer means the DLQ is empty;
            // a short poll samples some of them and can answer empty while messages remain.
            let out = self
                .client
                .receive_message()
                .queue_url(dlq)
                .max_number_of_messages(10)
                .wait_time_seconds(self.wait_seconds)
                .customize()
                .config_override(long_poll(self.poll_timeout))
                .send()
                .await
                .map_err(unavailable)?;
            if out.messages().is_empty() {
                return Ok(moved);
            }
            for m in out.messages() {
                // Send first, then delete: a crash in between duplicates, never loses.
                self.client
                    .send_message()
                    .queue_url(&self.url)
                    .message_body(m.body().unwrap_or_default())
                    .send()
                    .await
                    .map_err(unavailable)?;
                if let Some(handle) = m.receipt_handle() {
                    self.client
                        .delete_message()
                        .queue_url(dlq)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .map_err(unavailable)?;
                }
                moved += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backoff_is_whole_seconds_rounded_up_and_capped() {
        assert_eq!(seconds(Duration::ZERO), 0);
        assert_eq!(seconds(Duration::from_millis(800)), 1);
        assert_eq!(seconds(Duration::from_secs(30)), 30);
        assert_eq!(seconds(Duration::from_millis(24_001)), 25);
        assert_eq!(seconds(Duration::from_secs(90_000)), 43_200);
        let backoff = Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(900),
        };
        for _ in 0..100 {
            assert_eq!(seconds(backoff.delay(1)), 1);
        }
    }
}
