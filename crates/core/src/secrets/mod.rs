//! Where the receiver gets its webhook secrets: given once (local runs), or fetched from a store
//! at cold start, cached, and re-read at most once per interval after a failed verification, so
//! a rotation in Admin Center takes effect without a redeploy.

#[cfg(feature = "aws")]
pub mod secretsmanager;

use crate::signature::{SecretError, Secrets};
use async_trait::async_trait;
use std::sync::{Arc, RwLock};
use std::time::Duration;
// Tokio's clock, so that a test can run the real interval on a paused clock.
use tokio::time::Instant;

/// How often a failing signature may trigger a re-read of the secrets.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum SecretFetchError {
    #[error("the secret store is unavailable: {0}")]
    Unavailable(String),
    #[error("the stored secret is not usable: {0}")]
    Invalid(String),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The secrets in use now.
    fn current(&self) -> Arc<Secrets>;
    /// Called after a failed verification: re-reads the secrets if the last read is older than
    /// the refresh interval, and returns them if they changed.
    async fn refresh(&self) -> Option<Arc<Secrets>>;
}

/// Secrets given at start-up that never change.
#[derive(Debug, Clone)]
pub struct StaticSecrets(Arc<Secrets>);

impl StaticSecrets {
    pub fn new(secrets: Secrets) -> StaticSecrets {
        StaticSecrets(Arc::new(secrets))
    }
}

#[async_trait]
impl SecretSource for StaticSecrets {
    fn current(&self) -> Arc<Secrets> {
        self.0.clone()
    }
    async fn refresh(&self) -> Option<Arc<Secrets>> {
        None
    }
}

/// Reads the secrets from a store.
#[async_trait]
pub trait FetchSecrets: Send + Sync {
    async fn fetch(&self) -> Result<Secrets, SecretFetchError>;
}

/// Secrets fetched once, then re-fetched at most once per `interval` when asked to.
pub struct CachedSecrets<F> {
    fetch: F,
    interval: Duration,
    cached: RwLock<(Arc<Secrets>, Instant)>,
    refreshing: tokio::sync::Mutex<()>,
}

impl<F: FetchSecrets> CachedSecrets<F> {
    /// Fetches the secrets now; an error here must stop the program (fail closed).
    pub async fn load(fetch: F, interval: Duration) -> Result<CachedSecrets<F>, SecretFetchError> {
        let secrets = fetch.fetch().await?;
        Ok(CachedSecrets {
            fetch,
            interval,
            cached: RwLock::new((Arc::new(secrets), Instant::now())),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    fn snapshot(&self) -> (Arc<Secrets>, Instant) {
        match self.cached.read() {
            Ok(guard) => (guard.0.clone(), guard.1),
            Err(poisoned) => {
                let guard = poisoned.into_inner();
                (guard.0.clone(), guard.1)
            }
        }
    }
}

#[async_trait]
impl<F: FetchSecrets> SecretSource for CachedSecrets<F> {
    fn current(&self) -> Arc<Secrets> {
        self.snapshot().0
    }

    async fn refresh(&self) -> Option<Arc<Secrets>> {
        // One re-read at a time; the others wait for it and see its result.
        let _one = self.refreshing.lock().await;
        let (old, at) = self.snapshot();
        if at.elapsed() < self.interval {
            return None;
        }
        let fresh = match self.fetch.fetch().await {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::warn!(error = %e, "re-reading the webhook secrets failed; keeping the cached ones");
                // Count the failed read as a read, so a broken store is not hammered.
                Arc::clone(&old)
            }
        };
        if let Ok(mut guard) = self.cached.write() {
            *guard = (fresh.clone(), Instant::now());
        }
        (fresh != old).then_some(fresh)
    }
}

/// Parses a stored secret: JSON `{"current": …, "previous": …}`, or the bare current secret.
pub fn parse_stored(text: &str) -> Result<Secrets, SecretFetchError> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(trimmed)
            .map_err(|_| SecretFetchError::Invalid("not a JSON object".into()))?;
        let current = value
            .get("current")
            .and_then(|v| v.as_str())
            .ok_or_else(|| SecretFetchError::Invalid("no string field current".into()))?;
        let previous = value.get("previous").and_then(|v| v.as_str());
        Ok(Secrets::parse(current, previous)?)
    } else {
        Ok(Secrets::parse(trimmed, None)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    struct Scripted {
        values: Mutex<Vec<&'static str>>,
        calls: AtomicUsize,
    }

    #[async_trait]
    impl FetchSecrets for Scripted {
        async fn fetch(&self) -> Result<Secrets, SecretFetchError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut values = self.values.lock().unwrap();
            let v = if values.len() > 1 {
                values.remove(0)
            } else {
                values[0]
            };
            if v == "down" {
                return Err(SecretFetchError::Unavailable("down".into()));
            }
            parse_stored(v)
        }
    }

    fn scripted(values: Vec<&'static str>) -> Scripted {
        Scripted {
            values: Mutex::new(values),
            calls: AtomicUsize::new(0),
        }
    }

    /// The real interval (60 s) on a paused clock: however many signatures fail in between, the
    /// store is read at most once a minute, and a rotation is picked up at the minute.
    #[tokio::test(start_paused = true)]
    async fn refresh_is_rate_limited_to_once_a_minute_and_picks_up_rotation() {
        let cache = CachedSecrets::load(scripted(vec!["one", "two", "three"]), REFRESH_INTERVAL)
            .await
            .unwrap();
        assert_eq!(
            cache.current().current,
            crate::signature::Secret::parse("one").unwrap()
        );
        // A failed signature every second for 59 s: no re-read.
        for _ in 0..59 {
            assert!(cache.refresh().await.is_none());
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert_eq!(cache.fetch.calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        let fresh = cache.refresh().await.unwrap();
        assert_eq!(
            fresh.current,
            crate::signature::Secret::parse("two").unwrap()
        );
        assert_eq!(cache.fetch.calls.load(Ordering::SeqCst), 2);
        // And again not before the next minute.
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(cache.refresh().await.is_none());
        assert_eq!(cache.fetch.calls.load(Ordering::SeqCst), 2);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(cache.refresh().await.is_some());
        assert_eq!(cache.fetch.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn load_fails_closed_and_a_failed_refresh_keeps_the_cache() {
        assert!(
            CachedSecrets::load(scripted(vec!["down"]), REFRESH_INTERVAL)
                .await
                .is_err()
        );
        assert!(
            CachedSecrets::load(scripted(vec![r#"{"current":""}"#]), REFRESH_INTERVAL)
                .await
                .is_err()
        );
        let cache = CachedSecrets::load(scripted(vec!["one", "down"]), Duration::ZERO)
            .await
            .unwrap();
        assert!(cache.refresh().await.is_none());
        assert_eq!(
            cache.current().current,
            crate::signature::Secret::parse("one").unwrap()
        );
    }

    #[test]
    fn stored_forms() {
        let s = parse_stored(r#"{"current":"a","previous":"b"}"#).unwrap();
        assert!(s.previous.is_some());
        let s = parse_stored(r#"{"current":"a","previous":""}"#).unwrap();
        assert!(s.previous.is_none());
        assert!(parse_stored("plain").unwrap().previous.is_none());
        assert!(parse_stored(r#"{"previous":"b"}"#).is_err());
        assert!(parse_stored("{not json").is_err());
    }
}
