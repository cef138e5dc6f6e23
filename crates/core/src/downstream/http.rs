//! One HTTP call with bounded retries: exponential backoff with full jitter on timeouts,
//! connection errors, 408, 425, 429 and 5xx, honouring `Retry-After` (seconds); any other
//! non-2xx (401, 403, 404 …) is a permanent failure and is not retried.

use super::DownstreamError;
use rand::RngExt;
use reqwest::{RequestBuilder, Response, StatusCode};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    /// A longer `Retry-After` is not waited for in-process: the attempt fails and the queue
    /// retries it later.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    pub fn new(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts: attempts.max(1),
            base: Duration::from_millis(200),
            cap: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }

    /// Full jitter: a random wait up to `base * 2^(attempt-1)`, at most `cap`.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.cap);
        let millis = crate::clock::millis(ceiling).unsigned_abs();
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }
}

/// A client with the downstream timeouts.
pub fn client(timeout: Duration) -> Result<reqwest::Client, DownstreamError> {
    reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(3)))
        .timeout(timeout)
        .user_agent(concat!("zof-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| DownstreamError::permanent(format!("cannot build the HTTP client: {e}")))
}

fn retryable(status: StatusCode) -> bool {
    status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429)
}

fn retry_after(response: &Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Sends the request `build` makes, retrying as the policy says; `what` names the call in errors.
pub async fn send(
    policy: &RetryPolicy,
    what: &str,
    build: impl Fn() -> RequestBuilder,
) -> Result<Response, DownstreamError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let last = attempt >= policy.attempts;
        let (error, wait) = match build().send().await {
            Ok(response) if response.status().is_success() => return Ok(response),
            Ok(response) => {
                let status = response.status();
                if !retryable(status) {
                    return Err(DownstreamError::permanent(format!(
                        "{what}: HTTP {status} (permanent, not retried)"
                    )));
                }
                let wait = retry_after(&response);
                if wait.is_some_and(|w| w > policy.max_retry_after) {
                    return Err(DownstreamError::retryable(format!(
                        "{what}: HTTP {status}, Retry-After longer than {}s",
                        policy.max_retry_after.as_secs()
                    )));
                }
                (format!("{what}: HTTP {status}"), wait)
            }
            Err(e) if e.is_timeout() => (format!("{what}: timed out"), None),
            Err(e) => (format!("{what}: {}", error_chain(&e)), None),
        };
        if last {
            return Err(DownstreamError::retryable(format!(
                "{error} (after {attempt} attempts)"
            )));
        }
        let wait = wait.unwrap_or_else(|| policy.backoff(attempt));
        // WARN: a retried call may have landed already (a timeout), so the operator sees each
        // repeat a downstream receives.
        tracing::warn!(call = what, attempt, wait_ms = wait.as_millis() as u64, %error, "retrying");
        tokio::time::sleep(wait).await;
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_and_capped() {
        let p = RetryPolicy::new(5);
        for attempt in 1..10 {
            let ceiling = (200u64 << (attempt - 1)).min(5000);
            for _ in 0..20 {
                assert!(p.backoff(attempt) <= Duration::from_millis(ceiling));
            }
        }
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS) && retryable(StatusCode::BAD_GATEWAY));
        assert!(!retryable(StatusCode::UNAUTHORIZED) && !retryable(StatusCode::NOT_FOUND));
    }
}
