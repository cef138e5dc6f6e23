//! The process pipeline (DESIGN.md section 4, worker side): a queued event in, claim →
//! downstream → record, and whether the message should be acknowledged or retried.

use crate::downstream::Downstream;
use crate::event::{self, Envelope};
use crate::ledger::{Claim, Ledger, LedgerError, Record, Status};
use crate::{rfc3339, Clock};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much longer than its invocation a worker Lambda's claim lasts: time to record the
/// outcome after the work, never enough to keep a dead invocation's event waiting long.
pub const CLAIM_MARGIN: Duration = Duration::from_secs(5);

/// What to do with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Processed now: acknowledge.
    Processed,
    /// Already processed (a duplicate message): acknowledge.
    AlreadyProcessed,
    /// A conflicting delivery's message (its id is recorded with another body): acknowledge,
    /// never process.
    Dropped,
    /// Not done: report a batch-item failure so the queue retries (then dead-letters) it.
    Retry(String),
    /// Not yet: no record, and the message is younger than a receive lease (its delivery may
    /// still be recording it). Retried like [`Handled::Retry`], but nothing failed.
    NotYet,
}

impl Handled {
    pub fn acknowledged(&self) -> bool {
        !matches!(self, Handled::Retry(_) | Handled::NotYet)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Handled::Processed => "processed",
            Handled::AlreadyProcessed => "already_processed",
            Handled::Dropped => "dropped",
            Handled::Retry(_) => "retry",
            Handled::NotYet => "not_yet",
        }
    }
}

/// The process pipeline, built once per process.
pub struct Processor {
    ledger: Arc<dyn Ledger>,
    downstream: Arc<dyn Downstream>,
    /// How long a claim holds the event: the queue's visibility timeout.
    lease: Duration,
    /// How long a delivery may take to record its event: a message with no record is not
    /// taken for an orphan before it is this old.
    receive_lease: Duration,
    retention_seconds: i64,
    store_timeout: Duration,
    clock: Clock,
}

impl Processor {
    pub fn new(
        config: &crate::config::Config,
        ledger: Arc<dyn Ledger>,
        downstream: Arc<dyn Downstream>,
        clock: Clock,
    ) -> Processor {
        Processor {
            ledger,
            downstream,
            lease: config.processing_lease,
            receive_lease: config.receive_lease,
            retention_seconds: config.retention_seconds(),
            store_timeout: config.store_timeout,
            clock,
        }
    }

    /// Handles one queued message (the raw event body), and logs one line about it.
    pub async fn process(&self, message: &[u8]) -> Handled {
        self.process_within(message, None, self.lease).await
    }

    /// [`Processor::process`] of a message the queue gives a send time for (epoch ms).
    pub async fn process_sent(&self, message: &[u8], sent_at_ms: Option<i64>) -> Handled {
        self.process_within(message, sent_at_ms, self.lease).await
    }

    /// [`Processor::process`] by an invocation that has `time_left` to live: the claim lasts
    /// that long plus [`CLAIM_MARGIN`] (never longer than the processing lease), so a crashed or
    /// timed-out invocation's event is taken over as soon as its message comes back.
    ///
    /// `sent_at_ms`, the queue's send time of the message: the receiver sends while it records,
    /// so a message can arrive before its record. One younger than a receive lease with no
    /// record is retried later; an older one (its delivery's record was rolled back or
    /// expired), or one whose send time is unknown, creates the record and is processed.
    pub async fn process_within(
        &self,
        message: &[u8],
        sent_at_ms: Option<i64>,
        time_left: Duration,
    ) -> Handled {
        let lease = time_left.saturating_add(CLAIM_MARGIN).min(self.lease);
        // The work stops in time to record its result within the claim.
        let budget = time_left.min(self.lease);
        let work_limit = budget.saturating_sub(self.store_timeout.min(budget / 2));
        let started = Instant::now();
        let (id, handled) = match event::parse(message) {
            Ok(envelope) => {
                let handled = self
                    .claim_and_deliver(&envelope, message, sent_at_ms, lease, work_limit)
                    .await;
                (envelope.id, handled)
            }
            Err(e) => (
                String::new(),
                Handled::Retry(format!("malformed message: {e}")),
            ),
        };
        let reason = match &handled {
            Handled::Retry(why) => why.as_str(),
            _ => "",
        };
        tracing::info!(
            event_id = %id,
            result = handled.as_str(),
            reason,
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "message"
        );
        handled
    }

    async fn claim_and_deliver(
        &self,
        envelope: &Envelope,
        message: &[u8],
        sent_at_ms: Option<i64>,
        lease: Duration,
        work_limit: Duration,
    ) -> Handled {
        let now_ms = (self.clock)();
        let receive_lease_ms = i64::try_from(self.receive_lease.as_millis()).unwrap_or(i64::MAX);
        let create = sent_at_ms.is_none_or(|sent| now_ms.saturating_sub(sent) >= receive_lease_ms);
        let token = uuid::Uuid::new_v4().to_string();
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let claim = Record {
            id: envelope.id.clone(),
            status: Status::Processing,
            kind: envelope.kind.clone(),
            body_sha256: event::body_sha256(message),
            organization_id: envelope.organization_id.clone(),
            run_id: envelope.run_id.clone(),
            received_at: rfc3339(now_ms),
            lease_until: now_ms.saturating_add(lease_ms),
            lease_token: Some(token.clone()),
            delivery_token: None,
            attempts: 0,
            outcome: None,
            error: None,
            processed_at: None,
            expires_at: now_ms / 1000 + self.retention_seconds,
            // A record the claim creates (its own was rolled back or expired) keeps the body too.
            body: std::str::from_utf8(message).ok().map(str::to_string),
            replays: 0,
        };
        let claimed = match self
            .bounded(self.ledger.claim(&claim, create, now_ms))
            .await
        {
            // The claim may have landed before the error: read what the store holds.
            Err(e) => match self.bounded(self.ledger.get(&envelope.id)).await {
                Ok(Some(stored)) if holds(&stored, &token, Status::Processing) => {
                    Ok(Claim::Claimed(stored))
                }
                _ => Err(e),
            },
            claimed => claimed,
        };
        let record = match claimed {
            Ok(Claim::Claimed(record)) => record,
            // An earlier attempt of our own claim landed, and the retry found our lease.
            Ok(Claim::Busy(old)) if holds(&old, &token, Status::Processing) => old,
            Ok(Claim::Processed(_)) => return Handled::AlreadyProcessed,
            Ok(Claim::Busy(_)) => return Handled::Retry("another worker holds the event".into()),
            Ok(Claim::Absent) => return Handled::NotYet,
            Ok(Claim::Foreign(_)) => {
                tracing::warn!(
                    event_id = %envelope.id,
                    "the id is recorded with another body: a conflicting delivery's message, dropped"
                );
                return Handled::Dropped;
            }
            Err(e) => return Handled::Retry(e.to_string()),
        };
        // Never work past our own lease: after it, another worker may take the event over.
        let delivered =
            tokio::time::timeout(work_limit, self.downstream.deliver(envelope, &record))
                .await
                .unwrap_or_else(|_| {
                    Err(crate::downstream::DownstreamError::retryable(
                        "downstream work outlived the processing lease",
                    ))
                });
        match delivered {
            Ok(outcome) => {
                let at = rfc3339((self.clock)());
                match self
                    .bounded(self.ledger.finish(&envelope.id, &token, &outcome, &at))
                    .await
                {
                    Ok(true) => Handled::Processed,
                    Ok(false) => {
                        tracing::warn!(event_id = %envelope.id, "lease lost before the outcome was recorded");
                        Handled::Processed
                    }
                    // The write may have landed before the error: only our own `processed`
                    // record lets the message go.
                    Err(e) => match self.bounded(self.ledger.get(&envelope.id)).await {
                        Ok(Some(stored)) if holds(&stored, &token, Status::Processed) => {
                            Handled::Processed
                        }
                        _ => Handled::Retry(format!("outcome not recorded: {e}")),
                    },
                }
            }
            Err(e) => {
                if let Err(le) = self
                    .bounded(
                        self.ledger
                            .fail(&envelope.id, &token, &e.message, e.partial.as_ref()),
                    )
                    .await
                {
                    tracing::warn!(event_id = %envelope.id, error = %le, "could not record the failure");
                }
                let kind = if e.permanent {
                    "permanent failure"
                } else {
                    "failure"
                };
                tracing::warn!(event_id = %envelope.id, kind, error = %e.message, "downstream failed");
                Handled::Retry(e.message)
            }
        }
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, LedgerError>>,
    ) -> Result<T, LedgerError> {
        tokio::time::timeout(self.store_timeout, call)
            .await
            .unwrap_or_else(|_| Err(LedgerError::Unavailable("ledger call timed out".into())))
    }
}

/// Whether `record` is in `status` under the lease `token`.
fn holds(record: &Record, token: &str, status: Status) -> bool {
    record.status == status && record.lease_token.as_deref() == Some(token)
}

#[cfg(test)]
mod tests;
