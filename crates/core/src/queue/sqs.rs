//! The queue on SQS: one message per accepted event, its body the raw event JSON.

use super::{Queue, QueueError};
use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::Client;

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

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

#[async_trait]
impl Queue for SqsQueue {
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
