//! zof-webhooks core: everything that is not an entrypoint. The Lambdas and `zofhook` build a
//! [`receive::Receiver`] and a [`process::Processor`] from these parts and adapt their requests.

pub mod aws;
pub mod config;
pub mod downstream;
pub mod event;
pub mod ledger;
pub mod logging;
pub mod metrics;
pub mod process;
pub mod queue;
pub mod receive;
pub mod secrets;
pub mod signature;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use std::sync::Arc;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The time source of the pipelines: epoch milliseconds. Tests pass a fixed or moving clock.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(now_ms)
}

/// Epoch milliseconds now.
pub fn now_ms() -> i64 {
    let now = OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Epoch milliseconds as an RFC 3339 UTC timestamp with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(
            super::rfc3339(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
