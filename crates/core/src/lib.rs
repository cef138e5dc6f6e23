//! zof-webhooks core: everything that is not an entrypoint. The Lambdas and `zofhook` build a
//! [`receive::Receiver`] and a [`process::Processor`] from these parts and adapt their requests.

#[cfg(feature = "aws")]
pub mod aws;
pub mod config;
pub mod downstream;
pub mod event;
pub mod ledger;
pub mod logging;
pub mod metrics;
pub mod process;
pub mod protocol;
pub mod queue;
pub mod receive;
pub mod replay;
pub mod secrets;
pub mod signature;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use std::sync::Arc;
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
/// Epoch milliseconds of an RFC 3339 time.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let at = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// RFC 3339 in UTC, always with milliseconds, so that stored times sort as text in time order
/// (selections and pages compare them as strings).
pub fn rfc3339(ms: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
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
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
    }
}
