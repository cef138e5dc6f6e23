//! Time as the pipelines see it: epoch milliseconds, RFC 3339 text that sorts in time order,
//! the one clamp of a `Duration`, and the one bound on a store call. A leaf every module uses.

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

/// A duration in whole milliseconds, saturating: the one clamp of a `Duration` to `i64`.
pub fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `call`, given at most `limit`; past it, the error `timed_out` makes. The one bound on a
/// store call (ledger or queue) that the receiver and the worker share.
pub async fn within<T, E>(
    limit: std::time::Duration,
    call: impl std::future::Future<Output = Result<T, E>>,
    timed_out: impl FnOnce() -> E,
) -> Result<T, E> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
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
