//! The delivery protocol of zof-webhooks as a `stateright` model, on core's own code: the
//! decisions are `zofhook_core::protocol`'s [`Delivering`] and [`Working`] machines, the store's
//! transitions are `zofhook_core::ledger::step`, and the sinks' skip rule is
//! `zofhook_core::downstream::sink_done`, the functions `zofhook serve` and the Lambdas run.
//! The model only supplies what the real world does around them: the calls in flight, the queue,
//! time passing, and faults.
//!
//! One event id. Actors: deliveries of that id (each with its body, `A` or `B`), workers, an
//! operator who replays, the queue and the ledger. At every step any of these may happen:
//! - a call lands and answers; or (a fault) fails without landing, lands but answers an error,
//!   answers an error and lands later (an attempt that timed out on our side), or lands and is
//!   retried by the SDK, whose retry lands too and answers (a refused write that was ours, a
//!   message sent twice);
//! - a delivery gives up (its deadline, or a crash): what it sent may still land;
//! - a worker crashes; its claim and its message are taken over once they expire;
//! - a lease ends: freely once its holder is gone; while its holder is still at work, as a
//!   fault (a process paused past its lease on a busy machine). A worker's claim outlives its
//!   invocation (Lambda ends an invocation at its timeout, and the claim lasts the time left plus
//!   a margin), so a worker's lease ends only once the worker is gone;
//! - a message's visibility timeout ends (freely once its holder is gone, as a fault while it
//!   works); SQS delivers a stray copy (a fault); a message grows older than a receive lease;
//! - a delete with an old receipt handle may or may not delete the message (SQS says so).
//!
//! Faults are bounded by a budget, so that every run ends; the properties are in
//! [`Protocol::properties`].

use serde_json::{json, Value};
use stateright::{Model, Property};
use zofhook_core::downstream::{sink_done, sinks_done, DownstreamError, NOTIFY};
use zofhook_core::ledger::{step, Begin, Claim, LedgerError, Record, ReplayStart, Status};
use zofhook_core::protocol::{
    may_create, Answer, Delivering, DeliveryCall, DeliveryInput, Handled, WorkCall, WorkInput,
    Working,
};
use zofhook_core::queue::QueueError;

/// The model's clock. Time passes by leases ending ([`Action::Expire`]) and messages ageing.
pub const NOW: i64 = 1_000_000;
/// A lease that has not ended yet.
const LIVE: i64 = NOW + 60_000;
/// A lease that has ended.
const ENDED: i64 = NOW - 1;
/// A receive lease, for [`may_create`]: a message sent this long ago may create its record.
const RECEIVE_LEASE_MS: i64 = 10_000;
const ID: &str = "evt_model";

/// The bounds of one check.
#[derive(Clone, Debug)]
pub struct Protocol {
    /// One delivery each, with its body: 0 is `A`, 1 is `B` (a conflicting body).
    pub bodies: Vec<u8>,
    pub workers: usize,
    /// How many faults a run may have.
    pub faults: u8,
    /// How many replays the operator asks for.
    pub replays: u8,
    /// When a delivery sends.
    pub sends: Sends,
    /// Whether a delivery marks its record `enqueued` before it answers, as the product does.
    /// [`Mark::Dropped`] checks the protocol without that write (issue 22's candidate for a
    /// cheaper bill): RELIABILITY.md has what the checker found.
    pub mark: Mark,
}

impl Protocol {
    /// What `make test` checks: three deliveries (two of body `A`, one of `B`), two workers,
    /// one replay, two faults.
    pub fn bounded() -> Protocol {
        Protocol {
            bodies: vec![0, 0, 1],
            workers: 2,
            faults: 2,
            replays: 1,
            sends: Sends::Either,
            mark: Mark::Kept,
        }
    }
}

/// The `enqueued` mark: written (the product), or left out, the delivery answering as soon as
/// its put and its send have landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Kept,
    Dropped,
}

/// When the receiver sends the message: beside its put (SQS), after it (the local queue, and
/// ids this process began lately), or each delivery either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sends {
    BesidePut,
    AfterPut,
    Either,
}

/// A queued message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Msg {
    /// Which message this is (a stray copy gets its own).
    pub uid: u8,
    pub body: u8,
    /// The receipt handle while a consumer holds it; `None` while visible.
    pub receipt: Option<u8>,
}

/// A delivery of the event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dlv {
    Waiting,
    Running(Box<Delivering>),
    Answered(Answer),
    /// Its deadline fired or it crashed: Zof heard no 2xx.
    GaveUp,
}

/// A worker's handling of one message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Job {
    pub working: Working,
    pub token: String,
    pub msg: u8,
    pub receipt: u8,
    /// The record to do the downstream work on, once the machine asks for it.
    pub deliver: Option<Box<Record>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Wk {
    Idle,
    Busy(Job),
}

/// Who is waiting for a call.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    Delivery(usize),
    Worker(usize, String),
    Replay,
}

/// A call in flight.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    Begin(Box<Record>),
    Send(u8),
    Mark(String),
    Abandon(String),
    Read,
    Claim(Box<Record>, bool),
    Finish(String, Value),
    Fail(String, String, Option<Value>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Op {
    pub owner: Owner,
    pub call: Call,
    /// Whether its caller still waits for the answer (not after a timeout or a give-up).
    pub attached: bool,
}

impl Op {
    fn key(&self) -> (u8, usize, String, u8, String, bool) {
        let (who, n, token) = match &self.owner {
            Owner::Delivery(i) => (0, *i, String::new()),
            Owner::Worker(w, t) => (1, *w, t.clone()),
            Owner::Replay => (2, 0, String::new()),
        };
        let (kind, arg) = match &self.call {
            Call::Begin(r) => (0, r.lease_token.clone().unwrap_or_default()),
            Call::Send(b) => (1, b.to_string()),
            Call::Mark(t) => (2, t.clone()),
            Call::Abandon(t) => (3, t.clone()),
            Call::Read => (4, String::new()),
            Call::Claim(r, c) => (5, format!("{}{c}", r.lease_token.as_deref().unwrap_or(""))),
            Call::Finish(t, v) => (6, format!("{t}{v}")),
            Call::Fail(t, e, p) => (7, format!("{t}{e}{p:?}")),
        };
        (who, n, token, kind, arg, self.attached)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Each delivery's body (constant).
    pub bodies: Vec<u8>,
    /// The ledger's record of the id.
    pub record: Option<Record>,
    pub queue: Vec<Msg>,
    pub next_uid: u8,
    pub deliveries: Vec<Dlv>,
    pub workers: Vec<Wk>,
    pub ops: Vec<Op>,
    pub faults: u8,
    pub replays: u8,
    /// A replay's send failed: the operator is told, and replays again.
    pub replay_again: bool,
    /// Calls of the sink that took effect, by replay (`record.replays`).
    pub effects: Vec<u8>,
    /// A sink was called for a replay in which the store already recorded it done.
    pub sink_repeated: bool,
    /// The protocol without the `enqueued` mark (constant): see [`Mark::Dropped`].
    pub drop_mark: bool,
}

/// What a sink call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SinkResult {
    Ok,
    /// A fault: fails with no effect.
    Fails,
    /// A fault: takes effect, but its answer is lost.
    Lost,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Delivery `i` starts; with the send beside the put or after it.
    Start(usize, bool),
    GiveUp(usize),
    /// Call `n` lands and answers.
    Land(usize),
    LandButError(usize),
    /// The SDK's retry: the call lands, its answer is lost, the retry lands too and answers.
    LandTwice(usize),
    FailUnlanded(usize),
    /// Answers an error now; lands later.
    TimeOut(usize),
    /// A call whose caller left never lands.
    Vanish(usize),
    /// Worker `w` takes message `uid`; the flag: the message is older than a receive lease
    /// (it matters only while there is no record: [`may_create`]).
    Receive(usize, u8, bool),
    Sink(usize, SinkResult),
    /// The worker acts on its message; the flag: an old receipt's delete does delete.
    Settle(usize, bool),
    Crash(usize),
    /// The record's lease ends.
    Expire,
    /// The visibility timeout of the message ends.
    Reappear(u8),
    StrayCopy(u8),
    Replay,
}

fn body_name(body: u8) -> &'static str {
    if body == 0 {
        "A"
    } else {
        "B"
    }
}

fn delivery_token(i: usize) -> String {
    format!("d{i}")
}

/// What delivery `i` writes: the record `Record::received` makes, on the model's clock.
fn delivery_record(body: u8, token: &str) -> Record {
    Record {
        id: ID.into(),
        status: Status::Received,
        kind: "run.completed".into(),
        body_sha256: body_name(body).into(),
        organization_id: None,
        run_id: None,
        received_at: "t0".into(),
        lease_until: LIVE,
        lease_token: Some(token.into()),
        delivery_token: Some(token.into()),
        attempts: 0,
        outcome: None,
        error: None,
        processed_at: None,
        expires_at: i64::MAX / 1000,
        body: Some(body_name(body).into()),
        replays: 0,
    }
}

fn claim_record(body: u8, token: &str) -> Record {
    Record {
        status: Status::Processing,
        delivery_token: None,
        ..delivery_record(body, token)
    }
}

fn fault() -> LedgerError {
    LedgerError::Unavailable("fault".into())
}

/// What a call answered.
#[derive(Clone, Debug)]
enum Res {
    Begun(Begin),
    Sent,
    Flag(bool),
    Read(Option<Record>),
    Claimed(Claim),
}

impl State {
    fn delivery_live(&self, token: &str) -> bool {
        self.deliveries
            .iter()
            .enumerate()
            .any(|(i, d)| matches!(d, Dlv::Running(_)) && delivery_token(i) == token)
    }

    fn worker_live(&self, token: &str) -> bool {
        self.workers
            .iter()
            .any(|w| matches!(w, Wk::Busy(job) if job.token == token))
    }

    /// Whether the holder of the message's receipt is still at work on it.
    fn receipt_live(&self, receipt: u8) -> bool {
        self.workers
            .iter()
            .any(|w| matches!(w, Wk::Busy(job) if job.receipt == receipt && job.working.handled().is_none()))
    }

    /// A claim token for worker `w` that nothing in the state carries.
    fn fresh_token(&self, w: usize) -> String {
        (0..)
            .map(|n| format!("w{w}.{n}"))
            .find(|t| {
                self.record.as_ref().and_then(|r| r.lease_token.as_deref()) != Some(t.as_str())
                    && !self
                        .ops
                        .iter()
                        .any(|op| matches!(&op.owner, Owner::Worker(_, o) if o == t))
            })
            .unwrap_or_default()
    }

    fn fresh_receipt(&self) -> u8 {
        (0..)
            .find(|n| {
                !self.queue.iter().any(|m| m.receipt == Some(*n))
                    && !self
                        .workers
                        .iter()
                        .any(|w| matches!(w, Wk::Busy(job) if job.receipt == *n))
            })
            .unwrap_or(u8::MAX)
    }

    fn accepted(&self) -> usize {
        self.deliveries
            .iter()
            .filter(|d| matches!(d, Dlv::Answered(Answer::Accepted)))
            .count()
    }

    fn answered_2xx(&self) -> bool {
        self.deliveries
            .iter()
            .any(|d| matches!(d, Dlv::Answered(a) if a.is_2xx()))
    }

    fn enqueue(&mut self, body: u8) {
        let uid = self.next_uid;
        self.next_uid = self.next_uid.saturating_add(1);
        self.queue.push(Msg {
            uid,
            body,
            receipt: None,
        });
    }

    /// Applies a call to the store (or the queue) and says what it answers.
    fn land(&mut self, call: &Call) -> Res {
        match call {
            Call::Begin(record) => Res::Begun(step::begin(&mut self.record, record, NOW)),
            Call::Send(body) => {
                self.enqueue(*body);
                Res::Sent
            }
            Call::Mark(token) => Res::Flag(step::mark_enqueued(&mut self.record, token)),
            Call::Abandon(token) => Res::Flag(step::abandon(&mut self.record, token)),
            Call::Read => Res::Read(self.record.clone()),
            Call::Claim(claim, create) => {
                Res::Claimed(step::claim(&mut self.record, claim, *create, NOW))
            }
            Call::Finish(token, outcome) => {
                Res::Flag(step::finish(&mut self.record, token, outcome, "t1"))
            }
            Call::Fail(token, error, partial) => {
                Res::Flag(step::fail(&mut self.record, token, error, partial.as_ref()))
            }
        }
    }

    /// Hands a call's answer (`None`: an error) to its owner, and issues what it asks next.
    fn answer(&mut self, owner: &Owner, call: &Call, res: Option<Res>) {
        match owner {
            Owner::Delivery(i) => {
                let Dlv::Running(machine) = &mut self.deliveries[*i] else {
                    return;
                };
                let mut machine = machine.clone();
                let input = match (call, res) {
                    (Call::Begin(_), Some(Res::Begun(b))) => DeliveryInput::Begun(Ok(b)),
                    (Call::Begin(_), _) => DeliveryInput::Begun(Err(fault())),
                    (Call::Send(_), Some(_)) => DeliveryInput::Sent(Ok(())),
                    (Call::Send(_), None) => {
                        DeliveryInput::Sent(Err(QueueError::Unavailable("fault".into())))
                    }
                    (Call::Mark(_), Some(Res::Flag(f))) => DeliveryInput::Marked(Ok(f)),
                    (Call::Mark(_), _) => DeliveryInput::Marked(Err(fault())),
                    (Call::Abandon(_), Some(Res::Flag(f))) => DeliveryInput::Abandoned(Ok(f)),
                    (Call::Abandon(_), _) => DeliveryInput::Abandoned(Err(fault())),
                    (Call::Read, Some(Res::Read(r))) => DeliveryInput::Read(Ok(r)),
                    (Call::Read, _) => DeliveryInput::Read(Err(fault())),
                    _ => return,
                };
                let next = machine.on(input);
                self.delivery_next(*i, machine, next);
            }
            Owner::Worker(w, token) => {
                let Wk::Busy(job) = &self.workers[*w] else {
                    return;
                };
                if job.token != *token {
                    return;
                }
                let mut job = job.clone();
                let input = match (call, res) {
                    (Call::Claim(..), Some(Res::Claimed(c))) => WorkInput::Claimed(Ok(c)),
                    (Call::Claim(..), _) => WorkInput::Claimed(Err(fault())),
                    (Call::Read, Some(Res::Read(r))) => WorkInput::Read(Ok(r)),
                    (Call::Read, _) => WorkInput::Read(Err(fault())),
                    (Call::Finish(..), Some(Res::Flag(f))) => WorkInput::Finished(Ok(f)),
                    (Call::Finish(..), _) => WorkInput::Finished(Err(fault())),
                    (Call::Fail(..), Some(Res::Flag(f))) => WorkInput::Failed(Ok(f)),
                    (Call::Fail(..), _) => WorkInput::Failed(Err(fault())),
                    _ => return,
                };
                let next = job.working.on(input);
                self.worker_next(*w, job, next);
            }
            Owner::Replay => {
                if res.is_none() {
                    // The operator is told the send failed ("left enqueued; replay them again").
                    self.replay_again = true;
                }
            }
        }
    }

    fn delivery_next(
        &mut self,
        i: usize,
        mut machine: Box<Delivering>,
        mut next: Option<DeliveryCall>,
    ) {
        // Without the mark, the delivery is told its mark landed and no write is made: it
        // answers on the same facts a protocol without the mark would answer on.
        if self.drop_mark && next == Some(DeliveryCall::Mark) {
            next = machine.on(DeliveryInput::Marked(Ok(true)));
        }
        let token = delivery_token(i);
        if let Some(call) = next {
            self.issue(Owner::Delivery(i), self.delivery_call(i, call, &token));
        }
        self.deliveries[i] = match machine.answer() {
            Some(answer) => Dlv::Answered(answer.clone()),
            None => Dlv::Running(machine),
        };
    }

    fn delivery_call(&self, i: usize, call: DeliveryCall, token: &str) -> Call {
        let body = self.body_of(i);
        match call {
            DeliveryCall::Begin => Call::Begin(Box::new(delivery_record(body, token))),
            DeliveryCall::Send => Call::Send(body),
            DeliveryCall::Mark => Call::Mark(token.into()),
            DeliveryCall::Read => Call::Read,
            DeliveryCall::Abandon => Call::Abandon(token.into()),
        }
    }

    fn body_of(&self, i: usize) -> u8 {
        self.bodies.get(i).copied().unwrap_or(0)
    }

    fn worker_next(&mut self, w: usize, mut job: Job, next: Option<WorkCall>) {
        let owner = Owner::Worker(w, job.token.clone());
        match next {
            Some(WorkCall::Claim) => {}
            Some(WorkCall::Read) => self.issue(owner, Call::Read),
            Some(WorkCall::Deliver(record)) => job.deliver = Some(record),
            Some(WorkCall::Finish(outcome)) => {
                self.issue(owner, Call::Finish(job.token.clone(), outcome))
            }
            Some(WorkCall::Fail { error, partial }) => {
                self.issue(owner, Call::Fail(job.token.clone(), error, partial))
            }
            None => {}
        }
        let decided = job.working.handled().is_some();
        self.workers[w] = Wk::Busy(job);
        if decided && !self.settle_is_a_choice(w) {
            self.settle(w, false);
        }
    }

    /// Worker `w` acts on its message as its machine decided: deletes it (acknowledged), or
    /// makes it visible again (retried, after the backoff). A receipt that is no longer the
    /// message's own (the message came back and was taken again) does not change its
    /// visibility, and its delete may or may not delete the message.
    fn settle(&mut self, w: usize, old_receipt_deletes: bool) {
        let Wk::Busy(job) = &self.workers[w] else {
            return;
        };
        let Some(handled) = job.working.handled() else {
            return;
        };
        if let Some(at) = self.queue.iter().position(|m| m.uid == job.msg) {
            let current = self.queue[at].receipt == Some(job.receipt);
            if handled.acknowledged() {
                if current || old_receipt_deletes {
                    self.queue.remove(at);
                }
            } else if current {
                self.queue[at].receipt = None;
            }
        }
        self.workers[w] = Wk::Idle;
    }

    /// Whether worker `w`'s decision leaves SQS a choice: an acknowledgement with an old receipt.
    fn settle_is_a_choice(&self, w: usize) -> bool {
        let Wk::Busy(job) = &self.workers[w] else {
            return false;
        };
        let current = self
            .queue
            .iter()
            .any(|m| m.uid == job.msg && m.receipt == Some(job.receipt));
        let present = self.queue.iter().any(|m| m.uid == job.msg);
        job.working.handled().is_some_and(Handled::acknowledged) && present && !current
    }

    fn issue(&mut self, owner: Owner, call: Call) {
        self.ops.push(Op {
            owner,
            call,
            attached: true,
        });
        self.canonical();
    }

    /// Calls in flight are a set: keep them in one order, so that the order they were issued
    /// in does not make states that differ in nothing else.
    fn canonical(&mut self) {
        self.ops.sort_by_cached_key(Op::key);
    }

    /// The caller leaves: its calls in flight may still land, but nobody hears them.
    fn detach(&mut self, owner: &Owner) {
        for op in &mut self.ops {
            if op.owner == *owner {
                op.attached = false;
            }
        }
        self.canonical();
    }
}

impl Model for Protocol {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            bodies: self.bodies.clone(),
            record: None,
            queue: Vec::new(),
            next_uid: 0,
            deliveries: vec![Dlv::Waiting; self.bodies.len()],
            workers: vec![Wk::Idle; self.workers],
            ops: Vec::new(),
            faults: self.faults,
            replays: self.replays,
            replay_again: false,
            effects: Vec::new(),
            sink_repeated: false,
            drop_mark: self.mark == Mark::Dropped,
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        let fault = s.faults > 0;
        for (i, d) in s.deliveries.iter().enumerate() {
            match d {
                Dlv::Waiting => {
                    if self.sends != Sends::BesidePut {
                        actions.push(Action::Start(i, false));
                    }
                    if self.sends != Sends::AfterPut {
                        actions.push(Action::Start(i, true));
                    }
                }
                Dlv::Running(_) if fault => actions.push(Action::GiveUp(i)),
                _ => {}
            }
        }
        for (n, op) in s.ops.iter().enumerate() {
            actions.push(Action::Land(n));
            if !op.attached {
                actions.push(Action::Vanish(n));
            } else if fault && op.call != Call::Read {
                actions.push(Action::LandButError(n));
                actions.push(Action::LandTwice(n));
                actions.push(Action::FailUnlanded(n));
                actions.push(Action::TimeOut(n));
            } else if fault {
                actions.push(Action::FailUnlanded(n));
            }
        }
        for (w, wk) in s.workers.iter().enumerate() {
            match wk {
                Wk::Idle => {
                    for m in s.queue.iter().filter(|m| m.receipt.is_none()) {
                        actions.push(Action::Receive(w, m.uid, false));
                        if s.record.is_none() {
                            actions.push(Action::Receive(w, m.uid, true));
                        }
                    }
                }
                Wk::Busy(job) => {
                    if job.deliver.is_some() {
                        actions.push(Action::Sink(w, SinkResult::Ok));
                        if fault {
                            actions.push(Action::Sink(w, SinkResult::Fails));
                            actions.push(Action::Sink(w, SinkResult::Lost));
                        }
                    }
                    if s.settle_is_a_choice(w) {
                        actions.push(Action::Settle(w, false));
                        actions.push(Action::Settle(w, true));
                    }
                    if fault {
                        actions.push(Action::Crash(w));
                    }
                }
            }
        }
        if let Some(r) = &s.record {
            if r.lease_until > ENDED && matches!(r.status, Status::Received | Status::Processing) {
                let holder = r.lease_token.as_deref().unwrap_or_default();
                let live = match r.status {
                    Status::Received => s.delivery_live(holder),
                    _ => s.worker_live(holder),
                };
                // A worker's claim outlives its invocation: it never ends under a live worker.
                let may = match r.status {
                    Status::Received => !live || fault,
                    _ => !live,
                };
                if may {
                    actions.push(Action::Expire);
                }
            }
        }
        for m in &s.queue {
            if let Some(receipt) = m.receipt {
                if !s.receipt_live(receipt) || fault {
                    actions.push(Action::Reappear(m.uid));
                }
            }
            if fault {
                actions.push(Action::StrayCopy(m.uid));
            }
        }
        if s.replays > 0 || s.replay_again {
            let mut slot = s.record.clone();
            if matches!(step::replay(&mut slot, NOW), ReplayStart::Started(_)) {
                actions.push(Action::Replay);
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Start(i, overlap) => {
                let token = delivery_token(i);
                let record = delivery_record(self.bodies[i], &token);
                let (machine, calls) = Delivering::start(&record, NOW, overlap);
                for call in calls {
                    let call = s.delivery_call(i, call, &token);
                    s.issue(Owner::Delivery(i), call);
                }
                s.deliveries[i] = Dlv::Running(Box::new(machine));
            }
            Action::GiveUp(i) => {
                s.faults -= 1;
                s.deliveries[i] = Dlv::GaveUp;
                s.detach(&Owner::Delivery(i));
            }
            Action::Land(n) => {
                let op = s.ops.remove(n);
                let res = s.land(&op.call);
                if op.attached {
                    s.answer(&op.owner, &op.call, Some(res));
                }
            }
            Action::LandButError(n) => {
                s.faults -= 1;
                let op = s.ops.remove(n);
                s.land(&op.call);
                s.answer(&op.owner, &op.call, None);
            }
            Action::LandTwice(n) => {
                s.faults -= 1;
                let op = s.ops.remove(n);
                s.land(&op.call);
                let res = s.land(&op.call);
                s.answer(&op.owner, &op.call, Some(res));
            }
            Action::FailUnlanded(n) => {
                s.faults -= 1;
                let op = s.ops.remove(n);
                s.answer(&op.owner, &op.call, None);
            }
            Action::TimeOut(n) => {
                s.faults -= 1;
                s.ops[n].attached = false;
                let op = s.ops[n].clone();
                s.canonical();
                s.answer(&op.owner, &op.call, None);
            }
            Action::Vanish(n) => {
                s.ops.remove(n);
            }
            Action::Receive(w, uid, old) => {
                let receipt = s.fresh_receipt();
                let token = s.fresh_token(w);
                let m = s.queue.iter_mut().find(|m| m.uid == uid)?;
                m.receipt = Some(receipt);
                let body = m.body;
                let sent_at = if old { NOW - RECEIVE_LEASE_MS } else { NOW };
                let create = may_create(Some(sent_at), NOW, RECEIVE_LEASE_MS);
                let (working, _claim) = Working::start(&token);
                s.workers[w] = Wk::Busy(Job {
                    working,
                    token: token.clone(),
                    msg: uid,
                    receipt,
                    deliver: None,
                });
                s.issue(
                    Owner::Worker(w, token.clone()),
                    Call::Claim(Box::new(claim_record(body, &token)), create),
                );
            }
            Action::Sink(w, result) => {
                let Wk::Busy(job) = &s.workers[w] else {
                    return None;
                };
                let mut job = job.clone();
                let record = job.deliver.take()?;
                let mut done = sinks_done(record.outcome.as_ref());
                let epoch = usize::try_from(record.replays).unwrap_or(0);
                let mut failed = false;
                if !sink_done(&done, NOTIFY) {
                    if let Some(stored) = &s.record {
                        let recorded = sinks_done(stored.outcome.as_ref());
                        if stored.replays == record.replays && sink_done(&recorded, NOTIFY) {
                            s.sink_repeated = true;
                        }
                    }
                    if result != SinkResult::Ok {
                        s.faults -= 1;
                    }
                    if result != SinkResult::Fails {
                        if s.effects.len() <= epoch {
                            s.effects.resize(epoch + 1, 0);
                        }
                        s.effects[epoch] = s.effects[epoch].saturating_add(1);
                    }
                    if result == SinkResult::Ok {
                        done.insert(NOTIFY.into(), json!("ok"));
                    } else {
                        failed = true;
                    }
                } else if result != SinkResult::Ok {
                    return None;
                }
                let outcome = json!({"status": "unknown", "run": null, "sinks": done});
                let delivered = if failed {
                    Err(DownstreamError {
                        message: "notify failed".into(),
                        permanent: false,
                        partial: Some(outcome),
                    })
                } else {
                    Ok(outcome)
                };
                let next = job.working.on(WorkInput::Delivered(delivered));
                s.worker_next(w, job, next);
            }
            Action::Settle(w, old_receipt_deletes) => s.settle(w, old_receipt_deletes),
            Action::Crash(w) => {
                s.faults -= 1;
                if let Wk::Busy(job) = &s.workers[w] {
                    let owner = Owner::Worker(w, job.token.clone());
                    s.detach(&owner);
                }
                s.workers[w] = Wk::Idle;
            }
            Action::Expire => {
                let r = s.record.as_ref()?;
                let holder = r.lease_token.clone().unwrap_or_default();
                if r.status == Status::Received && s.delivery_live(&holder) {
                    s.faults -= 1;
                }
                if let Some(r) = s.record.as_mut() {
                    r.lease_until = ENDED;
                }
            }
            Action::Reappear(uid) => {
                let receipt = s.queue.iter().find(|m| m.uid == uid)?.receipt?;
                if s.receipt_live(receipt) {
                    s.faults -= 1;
                }
                s.queue.iter_mut().find(|m| m.uid == uid)?.receipt = None;
            }
            Action::StrayCopy(uid) => {
                s.faults -= 1;
                let body = s.queue.iter().find(|m| m.uid == uid)?.body;
                s.enqueue(body);
            }
            Action::Replay => {
                if s.replay_again {
                    s.replay_again = false;
                } else {
                    s.replays -= 1;
                }
                if let ReplayStart::Started(record) = step::replay(&mut s.record, NOW) {
                    let body = if record.body_sha256 == "A" { 0 } else { 1 };
                    s.issue(Owner::Replay, Call::Send(body));
                }
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("at most one accepted", |_, s: &State| s.accepted() <= 1),
            Property::always("a sink recorded done is not called again", |_, s: &State| {
                !s.sink_repeated
            }),
            Property::always(
                "when all is done: a 2xx'd event is processed, the queue is empty, the record settled",
                |m: &Protocol, s: &State| {
                    let mut next = Vec::new();
                    m.actions(s, &mut next);
                    !next.is_empty() || settled(s)
                },
            ),
            Property::sometimes("an event is accepted and processed", |_, s: &State| {
                s.accepted() == 1 && s.record.as_ref().is_some_and(|r| r.status == Status::Processed)
            }),
            Property::sometimes("a replay is processed", |_, s: &State| {
                s.record
                    .as_ref()
                    .is_some_and(|r| r.replays > 0 && r.status == Status::Processed)
            }),
        ]
    }
}

/// No call, message or worker left: what must hold then.
pub fn settled(s: &State) -> bool {
    let status = s.record.as_ref().map(|r| r.status);
    let processed = status == Some(Status::Processed)
        && s.effects
            .get(usize::try_from(s.record.as_ref().map_or(0, |r| r.replays)).unwrap_or(0))
            .is_some_and(|n| *n > 0);
    let resting = match status {
        None | Some(Status::Processed) => true,
        // A record no 2xx answered for, left for Zof's retry (or its TTL).
        Some(Status::Received) => !s.answered_2xx(),
        _ => false,
    };
    s.queue.is_empty() && s.ops.is_empty() && resting && (!s.answered_2xx() || processed)
}

/// Prints each property's result, with the trace of any counterexample, action by action.
/// Whether any property failed (an `always` with a counterexample, a `sometimes` never seen).
pub fn report(checker: &impl stateright::Checker<Protocol>) -> bool {
    use stateright::Expectation;
    let model = checker.model();
    let mut failed = false;
    for property in model.properties() {
        let found = checker.discovery(property.name);
        let holds = match property.expectation {
            Expectation::Sometimes => found.is_some(),
            _ => found.is_none(),
        };
        println!("{} {}", if holds { "ok  " } else { "FAIL" }, property.name);
        if !holds {
            failed = true;
        }
        if let (Some(path), false) = (found, property.expectation == Expectation::Sometimes) {
            println!(
                "  counterexample, {} steps:",
                path.clone().into_actions().len()
            );
            for line in trace(&path) {
                println!("    {line}");
            }
        }
    }
    failed
}

/// A counterexample as one line per step: who did what, and the record after it.
pub fn trace(path: &stateright::Path<State, Action>) -> Vec<String> {
    let mut lines = Vec::new();
    let steps = path.clone().into_vec();
    for (n, (before, action)) in steps.iter().enumerate() {
        let Some(action) = action else { continue };
        let after = steps.get(n + 1).map_or(path.last_state(), |(s, _)| s);
        let record = after.record.as_ref().map_or("no record".to_string(), |r| {
            format!(
                "{} (lease {}, delivery {})",
                r.status,
                r.lease_token.as_deref().unwrap_or("-"),
                r.delivery_token.as_deref().unwrap_or("-")
            )
        });
        lines.push(format!("{:<44} -> {record}", describe(before, action)));
    }
    let answers: Vec<String> = path
        .last_state()
        .deliveries
        .iter()
        .enumerate()
        .map(|(i, d)| match d {
            Dlv::Answered(a) => format!("d{i} {a:?}"),
            Dlv::GaveUp => format!("d{i} gave up"),
            _ => format!("d{i} -"),
        })
        .collect();
    lines.push(format!("answers: {}", answers.join(", ")));
    lines
}

/// One step in words.
pub fn describe(before: &State, action: &Action) -> String {
    let op = |n: &usize| {
        before.ops.get(*n).map_or("?".to_string(), |op| {
            let who = match &op.owner {
                Owner::Delivery(i) => format!("d{i}"),
                Owner::Worker(_, t) => t.clone(),
                Owner::Replay => "replay".into(),
            };
            let what = match &op.call {
                Call::Begin(_) => "put",
                Call::Send(_) => "send",
                Call::Mark(_) => "mark enqueued",
                Call::Abandon(_) => "delete",
                Call::Read => "read",
                Call::Claim(..) => "claim",
                Call::Finish(..) => "record processed",
                Call::Fail(..) => "record failed",
            };
            format!("{who} {what}")
        })
    };
    match action {
        Action::Start(i, beside) => format!(
            "d{i} starts ({})",
            if *beside {
                "send beside put"
            } else {
                "send after put"
            }
        ),
        Action::GiveUp(i) => format!("d{i} gives up (deadline)"),
        Action::Land(n) => format!("{} lands", op(n)),
        Action::LandButError(n) => format!("{} lands, answers an error", op(n)),
        Action::LandTwice(n) => format!("{} lands, and its retry lands", op(n)),
        Action::FailUnlanded(n) => format!("{} fails", op(n)),
        Action::TimeOut(n) => format!("{} times out (lands later)", op(n)),
        Action::Vanish(n) => format!("{} never lands", op(n)),
        Action::Receive(w, uid, old) => format!(
            "worker {w} receives message {uid}{}",
            if *old { " (old)" } else { "" }
        ),
        Action::Sink(w, r) => format!("worker {w} notifies: {r:?}"),
        Action::Settle(w, d) => format!("worker {w} acks an old receipt (deletes: {d})"),
        Action::Crash(w) => format!("worker {w} crashes"),
        Action::Expire => "the record's lease ends".into(),
        Action::Reappear(uid) => format!("message {uid} visible again"),
        Action::StrayCopy(uid) => format!("SQS delivers a copy of message {uid}"),
        Action::Replay => "the operator replays".into(),
    }
}
