//! The Zof API client: `GET {ZofApiBaseUrl}/v1/runs/{run_id}` with the bearer token, to learn
//! the run's terminal state, which `run.completed` does not carry.

use super::http::{self, RetryPolicy};
use super::DownstreamError;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

pub struct ZofApi {
    client: reqwest::Client,
    base: reqwest::Url,
    token: String,
    policy: RetryPolicy,
}

impl fmt::Debug for ZofApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZofApi")
            .field("base", &self.base.as_str())
            .field("token", &"<redacted>")
            .finish()
    }
}

impl ZofApi {
    pub fn new(
        base: &str,
        token: String,
        timeout: Duration,
        attempts: u32,
    ) -> Result<ZofApi, DownstreamError> {
        let base = reqwest::Url::parse(base)
            .map_err(|e| DownstreamError::permanent(format!("ZofApiBaseUrl {base:?}: {e}")))?;
        if base.cannot_be_a_base() {
            return Err(DownstreamError::permanent(format!(
                "ZofApiBaseUrl {base} cannot be a base URL"
            )));
        }
        Ok(ZofApi {
            client: http::client(timeout)?,
            base,
            token,
            policy: RetryPolicy::new(attempts),
        })
    }

    /// The run as Zof describes it (a JSON object; extra fields are kept as they are).
    pub async fn run(&self, run_id: &str) -> Result<Value, DownstreamError> {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            // Each push percent-encodes: a run id cannot change the path.
            segments.pop_if_empty().push("v1").push("runs").push(run_id);
        }
        let response = http::send(&self.policy, "zof api", || {
            self.client.get(url.clone()).bearer_auth(&self.token)
        })
        .await?;
        let run: Value = response.json().await.map_err(|e| {
            DownstreamError::retryable(format!("zof api: the run is not JSON: {e}"))
        })?;
        if !run.is_object() {
            return Err(DownstreamError::retryable(
                "zof api: the run is not a JSON object",
            ));
        }
        Ok(run)
    }
}

/// The run's state: `state`, else `status`, lowercased; `unknown` when neither is a string.
pub fn run_state(run: &Value) -> String {
    ["state", "status"]
        .iter()
        .find_map(|k| run.get(*k).and_then(Value::as_str))
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| "unknown".to_string())
}
