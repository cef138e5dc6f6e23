//! One shared AWS SDK configuration for every client of a process: the standard environment
//! (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL` …) plus our timeout and retry bounds, so that
//! every AWS call ends within `StoreTimeoutMs` after at most `StoreMaxAttempts` attempts.

use crate::config::Config;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::time::Duration;

pub async fn sdk_config(config: &Config) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts(config))
        .retry_config(RetryConfig::standard().with_max_attempts(config.store_max_attempts))
        .load()
        .await
}

/// The timeouts of every AWS call (tests point clients built with them at the emulator).
pub fn timeouts(config: &Config) -> TimeoutConfig {
    let attempts = config.store_max_attempts.max(1);
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(500).min(config.store_timeout))
        .operation_timeout(config.store_timeout)
        .operation_attempt_timeout(config.store_timeout / attempts)
        .build()
}

pub use aws_sdk_dynamodb as dynamodb;
#[cfg(feature = "eventbridge")]
pub use aws_sdk_eventbridge as eventbridge;
pub use aws_sdk_secretsmanager as secretsmanager;
pub use aws_sdk_sqs as sqs;
