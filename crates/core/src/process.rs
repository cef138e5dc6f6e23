//! The process pipeline (docs/design.md section 4, worker side): a queued event in, claim →
//! downstream → record, and whether the message should be acknowledged or retried.

use crate::clock::millis;
use crate::clock::{rfc3339, Clock};
use crate::downstream::{Downstream, DownstreamError, Progress};
use crate::event::{self, Envelope};
use crate::ledger::{Ledger, LedgerError, Record};
pub use crate::protocol::Handled;
use crate::protocol::{may_create, WorkCall, WorkInput, Working};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much longer than its invocation a worker Lambda's claim lasts: time to record the
/// outcome after the work, never enough to keep a dead invocation's event waiting long.
pub const CLAIM_MARGIN: Duration = Duration::from_secs(5);

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
        let started = Instant::now();
        let (id, handled) = self.handle_within(message, sent_at_ms, time_left).await;
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

    /// [`Processor::process_within`] without its log line: the event's id (empty for a message
    /// that is not an event) and what to do with the message. The worker Lambda writes one line
    /// per message that is its log line and its metrics at once
    /// ([`crate::metrics::Metrics::message`]).
    pub async fn handle_within(
        &self,
        message: &[u8],
        sent_at_ms: Option<i64>,
        time_left: Duration,
    ) -> (String, Handled) {
        let lease = time_left.saturating_add(CLAIM_MARGIN).min(self.lease);
        // The work stops in time to record its result within the claim.
        let budget = time_left.min(self.lease);
        let work_limit = budget.saturating_sub(self.store_timeout.min(budget / 2));
        match event::parse(message) {
            Ok(envelope) => {
                let handled = self
                    .attempt(&envelope, message, sent_at_ms, lease, work_limit)
                    .await;
                (envelope.id, handled)
            }
            Err(e) => (
                String::new(),
                Handled::Retry(format!("malformed message: {e}")),
            ),
        }
    }

    /// One attempt at a queued event: claim it, deliver it downstream, record the outcome. What
    /// to do next is decided by `protocol::Working`; this only performs each call and feeds
    /// its result back.
    async fn attempt(
        &self,
        envelope: &Envelope,
        message: &[u8],
        sent_at_ms: Option<i64>,
        lease: Duration,
        work_limit: Duration,
    ) -> Handled {
        let now_ms = (self.clock)();
        let create = may_create(sent_at_ms, now_ms, millis(self.receive_lease));
        let token = uuid::Uuid::new_v4().to_string();
        let claim = Record::claimed(
            envelope,
            message,
            &token,
            now_ms,
            now_ms.saturating_add(millis(lease)),
            self.retention_seconds,
        );
        let id = envelope.id.as_str();
        let (mut working, first) = Working::start(&token);
        let mut next = Some(first);
        while let Some(call) = next {
            let input = match call {
                WorkCall::Claim => WorkInput::Claimed(
                    self.bounded(self.ledger.claim(&claim, create, now_ms))
                        .await,
                ),
                WorkCall::Read => WorkInput::Read(self.bounded(self.ledger.get(id)).await),
                WorkCall::Deliver(record) => self.deliver(envelope, &record, work_limit).await,
                WorkCall::Finish(outcome) => self.record(id, &token, Ok(outcome)).await,
                WorkCall::Fail { error, partial } => {
                    self.record(id, &token, Err((error, partial))).await
                }
            };
            next = working.on(input);
        }
        let handled = working
            .handled()
            .cloned()
            .unwrap_or_else(|| Handled::Retry("the attempt ended undecided".into()));
        if handled == Handled::Dropped {
            tracing::warn!(
                event_id = %id,
                "the id is recorded with another body: a conflicting delivery's message, dropped"
            );
        }
        handled
    }

    /// The downstream work, never past `work_limit`: after our lease another worker may take
    /// the event over. What it achieved before the limit (the sinks that succeeded) is kept.
    async fn deliver(
        &self,
        envelope: &Envelope,
        record: &Record,
        work_limit: Duration,
    ) -> WorkInput {
        let progress = Progress::default();
        let work = self.downstream.deliver(envelope, record, &progress);
        WorkInput::Delivered(
            tokio::time::timeout(work_limit, work)
                .await
                .unwrap_or_else(|_| {
                    Err(DownstreamError {
                        partial: progress.take(),
                        ..DownstreamError::retryable(
                            "downstream work outlived the processing lease",
                        )
                    })
                }),
        )
    }

    /// Records the attempt's end: `processed` with its outcome, or `failed` with the error and
    /// the sinks that succeeded.
    async fn record(
        &self,
        id: &str,
        token: &str,
        ended: Result<serde_json::Value, (String, Option<serde_json::Value>)>,
    ) -> WorkInput {
        match ended {
            Ok(outcome) => {
                let at = rfc3339((self.clock)());
                WorkInput::Finished(
                    self.bounded(self.ledger.finish(id, token, &outcome, &at))
                        .await,
                )
            }
            Err((error, partial)) => {
                let failed = self
                    .bounded(self.ledger.fail(id, token, &error, partial.as_ref()))
                    .await;
                if let Err(le) = &failed {
                    tracing::warn!(event_id = %id, error = %le, "could not record the failure");
                }
                tracing::warn!(event_id = %id, error = %error, "downstream failed");
                WorkInput::Failed(failed)
            }
        }
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, LedgerError>>,
    ) -> Result<T, LedgerError> {
        crate::clock::within(self.store_timeout, call, || {
            LedgerError::Unavailable("ledger call timed out".into())
        })
        .await
    }
}

#[cfg(test)]
mod tests;
