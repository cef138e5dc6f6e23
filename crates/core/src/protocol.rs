//! The delivery protocol's decisions, without I/O (sans-I/O, as in quinn-proto and rustls).
//!
//! [`Delivering`] decides what one HTTP delivery of an event does next, and [`Working`] what a
//! worker does with one queued message, given what they sent and what came back or what they
//! read. They hold no clients and no clocks: `receive.rs` and `process.rs` perform the calls
//! and feed the results in, and the model checker in `model/` feeds them every interleaving of
//! results, faults and other actors' steps. The same code runs in both places.
//!
//! The rule that the model checker holds them to (docs/design.md, "The protocol"): a record is a
//! delivery's only while it carries that delivery's token, and `accepted` is answered only when
//! the store shows this delivery's own record queued or claimed.

use crate::downstream::{self, DownstreamError};
use crate::ledger::{may_begin, Begin, Claim, LedgerError, Record, Status};
use crate::queue::QueueError;
use serde_json::Value;

/// How many times a delivery tries to mark its record `enqueued` before it gives up (503).
pub const MARK_TRIES: u8 = 2;

/// A call a delivery asks the I/O layer to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryCall {
    /// [`crate::ledger::Ledger::begin`] with the delivery's record.
    Begin,
    /// [`crate::queue::Queue::send`] of the body.
    Send,
    /// [`crate::ledger::Ledger::mark_enqueued`] with the delivery's token.
    Mark,
    /// [`crate::ledger::Ledger::get`] of the id: an ambiguous answer is resolved by reading.
    Read,
    /// [`crate::ledger::Ledger::abandon`] with the delivery's token.
    Abandon,
}

/// The result of a [`DeliveryCall`], fed back in. A value that lives for one step: boxing the
/// read record buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryInput {
    Begun(Result<Begin, LedgerError>),
    Sent(Result<(), QueueError>),
    Marked(Result<bool, LedgerError>),
    Read(Result<Option<Record>, LedgerError>),
    Abandoned(Result<bool, LedgerError>),
}

/// What a delivery answers, before it becomes an HTTP reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Answer {
    Accepted,
    Duplicate,
    Conflict,
    /// Another delivery holds the id; ask Zof to retry after this many seconds.
    InProgress {
        retry_after_s: u64,
    },
    /// 503: nothing this delivery did may be taken for accepted. Why, for the log.
    Unavailable(String),
}

impl Answer {
    /// Whether Zof hears a 2xx.
    pub fn is_2xx(&self) -> bool {
        matches!(self, Answer::Accepted | Answer::Duplicate)
    }
}

/// The queue send of a delivery, which may run beside its put.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Send {
    NotAsked,
    InFlight,
    Landed,
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum DeliveryPhase {
    Beginning,
    /// The put failed; reading whether it landed. The put's error.
    CheckingBegin(String),
    /// The record is ours; waiting for the send.
    Ours,
    /// The `n`th mark is out.
    Marking(u8),
    /// The `n`th mark answered `false` or an error; reading what the store holds.
    CheckingMark(u8),
    /// The send failed; deleting our record. The send's error.
    Abandoning(String),
    /// The delete did not answer `true`; reading what the store holds.
    CheckingAbandon(String),
    Answered(Answer),
}

/// One delivery of an event, from its conditional put to its answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Delivering {
    token: String,
    body_sha256: String,
    now_ms: i64,
    send: Send,
    phase: DeliveryPhase,
}

impl Delivering {
    /// A delivery of `record` (status `received`, its `delivery_token` and `lease_token` this
    /// delivery's token). With `overlap` the send goes out beside the put (SQS: two round trips
    /// for an accepted delivery); without, only once the record is ours (a local queue, whose
    /// send is a write). The calls to make first, all at once.
    pub fn start(record: &Record, now_ms: i64, overlap: bool) -> (Delivering, Vec<DeliveryCall>) {
        let delivering = Delivering {
            token: record.delivery_token.clone().unwrap_or_default(),
            body_sha256: record.body_sha256.clone(),
            now_ms,
            send: if overlap {
                Send::InFlight
            } else {
                Send::NotAsked
            },
            phase: DeliveryPhase::Beginning,
        };
        let calls = if overlap {
            vec![DeliveryCall::Begin, DeliveryCall::Send]
        } else {
            vec![DeliveryCall::Begin]
        };
        (delivering, calls)
    }

    /// The answer, once decided. Results fed in after it change nothing.
    pub fn answer(&self) -> Option<&Answer> {
        match &self.phase {
            DeliveryPhase::Answered(answer) => Some(answer),
            _ => None,
        }
    }

    /// The send this delivery made, if any, is still out.
    pub fn sending(&self) -> bool {
        self.send == Send::InFlight
    }

    /// Takes one result in; the next call to make, if any. `None` with no answer yet means:
    /// wait for the call still out (the send).
    pub fn on(&mut self, input: DeliveryInput) -> Option<DeliveryCall> {
        if let DeliveryInput::Sent(sent) = input {
            self.send = match sent {
                Ok(()) => Send::Landed,
                Err(e) => Send::Failed(e.to_string()),
            };
            return match self.phase {
                DeliveryPhase::Ours => self.after_ours(),
                _ => None,
            };
        }
        let phase = self.phase.clone();
        match (phase, input) {
            (DeliveryPhase::Beginning, DeliveryInput::Begun(begun)) => match begun {
                Ok(Begin::Started) => self.ours(),
                // An earlier attempt of our own put landed, and the retry found our record:
                // still held by us, or already claimed by a worker (our send went with the put).
                Ok(Begin::Exists(old)) if self.is_ours(&old) => self.ours(),
                Ok(Begin::Exists(old)) => self.answer_with(self.existing(&old)),
                Err(e) => self.then(
                    DeliveryPhase::CheckingBegin(e.to_string()),
                    DeliveryCall::Read,
                ),
            },
            (DeliveryPhase::CheckingBegin(why), DeliveryInput::Read(read)) => match read {
                Ok(Some(stored)) if self.is_ours(&stored) => self.ours(),
                Ok(Some(stored)) if !may_begin(Some(&stored), self.now_ms) => {
                    self.answer_with(self.existing(&stored))
                }
                _ => self.answer_with(Answer::Unavailable(why)),
            },
            (DeliveryPhase::Marking(n), DeliveryInput::Marked(marked)) => match marked {
                Ok(true) => self.answer_with(Answer::Accepted),
                // Not ours as we left it, or no answer: read who holds the record now. A
                // refused mark is not a worker's claim until the store shows it is of *our*
                // record: a later delivery may have taken it over after our lease.
                _ => self.then(DeliveryPhase::CheckingMark(n), DeliveryCall::Read),
            },
            (DeliveryPhase::CheckingMark(n), DeliveryInput::Read(read)) => match read {
                // Our record, queued (our mark landed) or claimed by a worker.
                Ok(Some(stored)) if self.is_ours(&stored) && stored.status != Status::Received => {
                    self.answer_with(Answer::Accepted)
                }
                // Still ours and `received` (the mark did not land), or the read failed: mark
                // again, while tries remain.
                Ok(Some(stored))
                    if self.holds(&stored)
                        && stored.status == Status::Received
                        && n < MARK_TRIES =>
                {
                    self.then(DeliveryPhase::Marking(n + 1), DeliveryCall::Mark)
                }
                Err(_) if n < MARK_TRIES => {
                    self.then(DeliveryPhase::Marking(n + 1), DeliveryCall::Mark)
                }
                // Gone, another delivery's, or still `received` after every try. Our message
                // is queued, so nothing is lost: the worker claims from `received`, and Zof's
                // retry hears `in_progress`, then `duplicate`.
                Ok(Some(stored)) if !self.is_ours(&stored) => self.answer_with(
                    Answer::Unavailable("another delivery took the record over".into()),
                ),
                _ => self.answer_with(Answer::Unavailable(
                    "queued, but the record could not be marked enqueued".into(),
                )),
            },
            (DeliveryPhase::Abandoning(why), DeliveryInput::Abandoned(abandoned)) => {
                match abandoned {
                    Ok(true) => self.answer_with(Answer::Unavailable(why)),
                    Ok(false) => self.then(DeliveryPhase::CheckingAbandon(why), DeliveryCall::Read),
                    Err(e) => self.then(
                        DeliveryPhase::CheckingAbandon(format!("{why}; rollback failed: {e}")),
                        DeliveryCall::Read,
                    ),
                }
            }
            (DeliveryPhase::CheckingAbandon(why), DeliveryInput::Read(read)) => match read {
                // A worker claimed the record this delivery wrote: the send did land.
                Ok(Some(stored))
                    if self.is_ours(&stored)
                        && stored.lease_token.as_deref() != Some(self.token.as_str()) =>
                {
                    self.answer_with(Answer::Accepted)
                }
                // Gone (an earlier attempt of our delete landed), another delivery's, or still
                // ours (the delete failed: the lease expires and the next delivery takes over).
                _ => self.answer_with(Answer::Unavailable(why)),
            },
            // A result this phase does not wait for (a call of a phase already left).
            _ => None,
        }
    }

    /// The record is this delivery's: it carries our token as the delivery's.
    fn is_ours(&self, record: &Record) -> bool {
        record.delivery_token.as_deref() == Some(self.token.as_str())
    }

    /// Ours, and still under our lease (no worker has claimed it).
    fn holds(&self, record: &Record) -> bool {
        self.is_ours(record) && record.lease_token.as_deref() == Some(self.token.as_str())
    }

    fn ours(&mut self) -> Option<DeliveryCall> {
        self.phase = DeliveryPhase::Ours;
        self.after_ours()
    }

    /// The record is ours: send it if not yet, wait for the send, or go on with its result.
    fn after_ours(&mut self) -> Option<DeliveryCall> {
        match self.send.clone() {
            Send::NotAsked => {
                self.send = Send::InFlight;
                Some(DeliveryCall::Send)
            }
            Send::InFlight => None,
            Send::Landed => self.then(DeliveryPhase::Marking(1), DeliveryCall::Mark),
            Send::Failed(why) => self.then(DeliveryPhase::Abandoning(why), DeliveryCall::Abandon),
        }
    }

    fn then(&mut self, phase: DeliveryPhase, call: DeliveryCall) -> Option<DeliveryCall> {
        self.phase = phase;
        Some(call)
    }

    fn answer_with(&mut self, answer: Answer) -> Option<DeliveryCall> {
        self.phase = DeliveryPhase::Answered(answer);
        None
    }

    /// The answer to a delivery whose id another delivery recorded.
    fn existing(&self, old: &Record) -> Answer {
        if old.body_sha256 != self.body_sha256 {
            return Answer::Conflict;
        }
        if old.status == Status::Received && old.lease_live(self.now_ms) {
            let wait_ms = old.lease_until.saturating_sub(self.now_ms);
            return Answer::InProgress {
                retry_after_s: u64::try_from(wait_ms).unwrap_or(0).div_ceil(1000).max(1),
            };
        }
        Answer::Duplicate
    }
}

/// Whether a worker may create the record of a message that has none: the message is older than
/// a receive lease (its delivery's record was rolled back or has expired), or its send time is
/// unknown. A younger one may be arriving before its record: the receiver sends beside its put.
pub fn may_create(sent_at_ms: Option<i64>, now_ms: i64, receive_lease_ms: i64) -> bool {
    sent_at_ms.is_none_or(|sent| now_ms.saturating_sub(sent) >= receive_lease_ms)
}

/// What to do with a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

/// A call a worker asks the I/O layer to make.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WorkCall {
    /// [`crate::ledger::Ledger::claim`] with the worker's claim.
    Claim,
    /// [`crate::ledger::Ledger::get`] of the id.
    Read,
    /// The downstream work on the claimed record (its `outcome` says what is done already).
    Deliver(Box<Record>),
    /// [`crate::ledger::Ledger::finish`] with this outcome.
    Finish(Value),
    /// [`crate::ledger::Ledger::fail`] with this error and partial outcome.
    Fail {
        error: String,
        partial: Option<Value>,
    },
}

/// The result of a [`WorkCall`], fed back in (see [`DeliveryInput`] on its size).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum WorkInput {
    Claimed(Result<Claim, LedgerError>),
    Read(Result<Option<Record>, LedgerError>),
    Delivered(Result<Value, DownstreamError>),
    Finished(Result<bool, LedgerError>),
    Failed(Result<bool, LedgerError>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum WorkPhase {
    Claiming,
    /// The claim failed; reading whether it landed. The claim's error.
    CheckingClaim(String),
    Delivering,
    /// Recording this outcome.
    Finishing(Value),
    /// The outcome write did not answer `true`; reading what the store holds. Why.
    CheckingFinish(String),
    /// Recording the failure; the downstream error.
    Failing(String),
    Done(Handled),
}

/// One worker's handling of one message, from its claim to acknowledge-or-retry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Working {
    token: String,
    phase: WorkPhase,
}

impl Working {
    /// Handling under the claim token `token` (the claim's `lease_token`); the first call.
    pub fn start(token: &str) -> (Working, WorkCall) {
        let working = Working {
            token: token.to_string(),
            phase: WorkPhase::Claiming,
        };
        (working, WorkCall::Claim)
    }

    /// What to do with the message, once decided.
    pub fn handled(&self) -> Option<&Handled> {
        match &self.phase {
            WorkPhase::Done(handled) => Some(handled),
            _ => None,
        }
    }

    /// Takes one result in; the next call, or `None` once [`Working::handled`] says what to do.
    pub fn on(&mut self, input: WorkInput) -> Option<WorkCall> {
        let phase = self.phase.clone();
        match (phase, input) {
            (WorkPhase::Claiming, WorkInput::Claimed(claimed)) => match claimed {
                Ok(Claim::Claimed(record)) => self.deliver(record),
                // An earlier attempt of our own claim landed, and the retry found our lease.
                Ok(Claim::Busy(old)) if self.holds(&old, Status::Processing) => self.deliver(old),
                Ok(Claim::Busy(_)) => {
                    self.done(Handled::Retry("another worker holds the event".into()))
                }
                Ok(Claim::Processed(_)) => self.done(Handled::AlreadyProcessed),
                Ok(Claim::Absent) => self.done(Handled::NotYet),
                Ok(Claim::Foreign(_)) => self.done(Handled::Dropped),
                Err(e) => self.then(WorkPhase::CheckingClaim(e.to_string()), WorkCall::Read),
            },
            (WorkPhase::CheckingClaim(why), WorkInput::Read(read)) => match read {
                Ok(Some(stored)) if self.holds(&stored, Status::Processing) => self.deliver(stored),
                _ => self.done(Handled::Retry(why)),
            },
            // What the record keeps is bounded (no write may exceed the store's item limit).
            (WorkPhase::Delivering, WorkInput::Delivered(delivered)) => match delivered {
                Ok(outcome) => {
                    let outcome = downstream::bounded(outcome);
                    self.then(
                        WorkPhase::Finishing(outcome.clone()),
                        WorkCall::Finish(outcome),
                    )
                }
                Err(e) => self.fail(e.message, e.partial),
            },
            (WorkPhase::Finishing(outcome), WorkInput::Finished(finished)) => match finished {
                Ok(true) => self.done(Handled::Processed),
                // A write that can never succeed: the attempt ends `failed`, keeping the sinks
                // already told, so that the retry repeats none of them.
                Err(LedgerError::Rejected(why)) => {
                    let mut partial = serde_json::Map::new();
                    for key in ["status", "sinks"] {
                        if let Some(v) = outcome.get(key) {
                            partial.insert(key.into(), v.clone());
                        }
                    }
                    self.fail(
                        format!("the ledger refused the outcome: {why}"),
                        Some(Value::Object(partial)),
                    )
                }
                // Our lease was lost before the outcome was recorded (another worker claimed
                // after it), or no answer: only a `processed` record lets the message go. A
                // message acknowledged while another worker's attempt is still open could be
                // the one that worker needs for its retry.
                Ok(false) => self.then(
                    WorkPhase::CheckingFinish("lease lost before the outcome was recorded".into()),
                    WorkCall::Read,
                ),
                Err(e) => self.then(
                    WorkPhase::CheckingFinish(format!("outcome not recorded: {e}")),
                    WorkCall::Read,
                ),
            },
            (WorkPhase::CheckingFinish(why), WorkInput::Read(read)) => match read {
                Ok(Some(stored)) if stored.status == Status::Processed => {
                    self.done(Handled::Processed)
                }
                _ => self.done(Handled::Retry(why)),
            },
            // Whether or not the failure was recorded, the message is retried.
            (WorkPhase::Failing(why), WorkInput::Failed(_)) => self.done(Handled::Retry(why)),
            _ => None,
        }
    }

    fn fail(&mut self, error: String, partial: Option<Value>) -> Option<WorkCall> {
        let error = downstream::bounded_error(error);
        self.then(
            WorkPhase::Failing(error.clone()),
            WorkCall::Fail {
                error,
                partial: partial.map(downstream::bounded),
            },
        )
    }

    fn holds(&self, record: &Record, status: Status) -> bool {
        record.status == status && record.lease_token.as_deref() == Some(self.token.as_str())
    }

    fn deliver(&mut self, record: Record) -> Option<WorkCall> {
        self.then(WorkPhase::Delivering, WorkCall::Deliver(Box::new(record)))
    }

    fn then(&mut self, phase: WorkPhase, call: WorkCall) -> Option<WorkCall> {
        self.phase = phase;
        Some(call)
    }

    fn done(&mut self, handled: Handled) -> Option<WorkCall> {
        self.phase = WorkPhase::Done(handled);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Record;
    use serde_json::json;

    fn claimed(token: &str) -> Record {
        let body = br#"{"id":"evt_1","type":"run.completed","created":"2026-05-20T12:00:00Z","data":{"object":{"run_id":"run_1"}}}"#;
        let envelope = crate::event::parse(body).unwrap();
        Record::claimed(&envelope, body, token, 0, 60_000, 86_400)
    }

    /// The outcome a worker records is bounded before the write; a write the store refuses as
    /// invalid ends the attempt `failed` with the sinks already told, never repeating them.
    #[test]
    fn a_refused_outcome_ends_the_attempt_failed_with_its_sinks() {
        let (mut w, first) = Working::start("t1");
        assert_eq!(first, WorkCall::Claim);
        let next = w.on(WorkInput::Claimed(Ok(Claim::Claimed(claimed("t1")))));
        assert!(matches!(next, Some(WorkCall::Deliver(_))));
        let huge = json!({"status": "passed", "run": {"id": "run_1", "log": "x".repeat(500_000)},
                          "sinks": {"notify": "ok"}});
        let Some(WorkCall::Finish(outcome)) = w.on(WorkInput::Delivered(Ok(huge))) else {
            panic!("no finish")
        };
        assert!(outcome.to_string().len() <= downstream::OUTCOME_MAX_BYTES);
        assert_eq!(outcome["run"]["id"], "run_1");
        assert_eq!(outcome["run_truncated"], true);
        let next = w.on(WorkInput::Finished(Err(LedgerError::Rejected(
            "Item size has exceeded the maximum allowed size".into(),
        ))));
        let Some(WorkCall::Fail { error, partial }) = next else {
            panic!("not failed: {next:?}")
        };
        assert!(error.contains("refused"), "{error}");
        assert_eq!(
            partial,
            Some(json!({"status": "passed", "sinks": {"notify": "ok"}}))
        );
        assert_eq!(w.on(WorkInput::Failed(Ok(true))), None);
        assert!(matches!(w.handled(), Some(Handled::Retry(_))));
    }

    /// An unanswered outcome write is still read back (it may have landed), not failed.
    #[test]
    fn an_unavailable_outcome_write_is_read_back() {
        let (mut w, _) = Working::start("t1");
        w.on(WorkInput::Claimed(Ok(Claim::Claimed(claimed("t1")))));
        w.on(WorkInput::Delivered(Ok(json!({"status": "passed"}))));
        let next = w.on(WorkInput::Finished(Err(LedgerError::Unavailable(
            "timed out".into(),
        ))));
        assert_eq!(next, Some(WorkCall::Read));
    }

    #[test]
    fn errors_and_small_outcomes_are_kept_and_large_ones_cut() {
        let small = json!({"status": "failed", "run": {"id": "r", "steps": [1, 2]}, "sinks": {}});
        assert_eq!(downstream::bounded(small.clone()), small);
        let error = "é".repeat(10_000);
        let kept = downstream::bounded_error(error);
        assert!(kept.len() <= downstream::ERROR_MAX_BYTES && kept.ends_with("..."));
        let many: serde_json::Map<String, Value> = (0..5_000)
            .map(|i| (format!("field_{i:05}"), json!("v".repeat(100))))
            .collect();
        let cut = downstream::bounded(json!({"status": "passed", "run": many}));
        assert!(cut.to_string().len() <= downstream::OUTCOME_MAX_BYTES);
        assert_eq!(cut["run"]["field_00000"], "v".repeat(100));
    }

    /// An EventBridge detail stays under PutEvents' 256 KB with a 330 KB run, and keeps the
    /// event id consumers dedupe on.
    #[test]
    fn an_event_detail_fits_put_events() {
        let body = json!({"event_id": "evt_1", "status": "passed",
                          "run": {"id": "run_1", "log": "x".repeat(330 * 1024)}});
        let detail = downstream::fitted(&body, downstream::EVENT_DETAIL_MAX_BYTES);
        assert!(detail.to_string().len() <= downstream::EVENT_DETAIL_MAX_BYTES);
        assert_eq!(detail["event_id"], "evt_1");
        assert_eq!(detail["run"]["id"], "run_1");
        assert_eq!(detail["run_truncated"], true);
        let small = json!({"event_id": "evt_2", "run": {"id": "run_2"}});
        assert_eq!(
            downstream::fitted(&small, downstream::EVENT_DETAIL_MAX_BYTES),
            small
        );
    }
}
