//! The retry policy of failed events, below both the settings (`config`) that size it and the
//! queues that apply it.

use std::time::Duration;

/// How long a failed event waits before its next attempt (docs/design.md section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait after a message's `receive_count`-th receive failed: `base` doubled per earlier
    /// receive, capped at `max`, less up to a fifth of it at random (retries of one outage
    /// spread out, and the default retry window stays above an hour).
    pub fn delay(&self, receive_count: u32) -> Duration {
        let doublings = receive_count.saturating_sub(1).min(20);
        let full = self.base.saturating_mul(1 << doublings).min(self.max);
        let jitter_ms = u64::try_from(full.as_millis() / 5).unwrap_or(0);
        let jitter = rand::RngExt::random_range(&mut rand::rng(), 0..=jitter_ms);
        full.saturating_sub(Duration::from_millis(jitter))
    }
}
