//! The delivery protocol's model check, bounded so that it runs in `make test` (the deeper run
//! is `make model`; RELIABILITY.md has both state counts), and its counterexamples kept as
//! deterministic step-by-step runs of the same model.

use stateright::{Checker, Model};
use zofhook_core::ledger::Status;
use zofhook_core::protocol::Answer;
use zofhook_model::{describe, Action, Dlv, Mark, Protocol, Sends, State};

fn check(protocol: Protocol, at_least: usize) {
    // Depth first: it keeps fingerprints, not states, so the run stays small beside other tests.
    let checker = protocol.checker().spawn_dfs().join();
    let failed = zofhook_model::report(&checker);
    println!(
        "states: {} unique, depth {}",
        checker.unique_state_count(),
        checker.max_depth()
    );
    assert!(!failed, "a property failed: see the trace above");
    // Not vacuous: the run reached the states the properties speak of.
    assert!(checker.unique_state_count() >= at_least);
}

#[test]
fn two_deliveries_two_workers_a_replay_and_a_fault_keep_every_property() {
    check(
        Protocol {
            bodies: vec![0, 0],
            workers: 2,
            faults: 1,
            replays: 1,
            sends: Sends::Either,
            mark: Mark::Kept,
        },
        1_000_000,
    );
}

#[test]
fn a_conflicting_body_beside_two_deliveries_keeps_every_property() {
    check(
        Protocol {
            bodies: vec![0, 0, 1],
            workers: 1,
            faults: 0,
            replays: 1,
            sends: Sends::Either,
            mark: Mark::Kept,
        },
        50_000,
    );
}

/// Runs `steps` (each picked by its description, as a trace prints it) from the start.
fn run(protocol: &Protocol, steps: &[&str]) -> State {
    run_on(protocol, protocol.init_states().remove(0), steps)
}

/// The counterexample the checker found in the `enqueued` mark as it was: a delivery whose lease
/// ended while it worked, a later delivery that took the record over and was accepted, and then
/// the first delivery's mark, refused, answered `accepted` too ("the worker claimed it first").
#[test]
fn a_mark_refused_after_a_takeover_is_not_accepted() {
    let protocol = Protocol {
        bodies: vec![0, 0],
        workers: 1,
        faults: 1,
        replays: 0,
        sends: Sends::BesidePut,
        mark: Mark::Kept,
    };
    let state = run(
        &protocol,
        &[
            "d0 starts (send beside put)",
            "d1 starts (send beside put)",
            "d1 put lands",
            "d1 send lands",
            "the record's lease ends",
            "d0 put lands",
            "d0 send lands",
            "d0 mark enqueued lands",
            "d1 mark enqueued lands",
            "d1 read lands",
        ],
    );
    assert_eq!(state.deliveries[0], Dlv::Answered(Answer::Accepted));
    assert_eq!(
        state.deliveries[1],
        Dlv::Answered(Answer::Unavailable(
            "another delivery took the record over".into()
        ))
    );
    // Both messages are queued; the worker processes the event once and drops the copy.
    let state = run_on(
        &protocol,
        state,
        &[
            "worker 0 receives message 0",
            "w0.0 claim lands",
            "worker 0 notifies: Ok",
            "w0.0 record processed lands",
            "worker 0 receives message 1",
            "w0.1 claim lands",
        ],
    );
    let record = state.record.clone().expect("a record");
    assert_eq!(record.status, Status::Processed);
    assert!(state.queue.is_empty());
    assert_eq!(state.effects, vec![1]);
    assert!(zofhook_model::settled(&state));
}

/// Issue 22's candidate for a cheaper bill: the same protocol without the `enqueued` mark (one
/// write unit less per event). The checker finds two `accepted` with no fault at all: a record
/// left `received` is all a later delivery can see, whether or not its message went out, so it
/// takes the record over once the receive lease has ended (the worker is behind), and is
/// accepted too. The mark stays (RELIABILITY.md, "The `enqueued` mark stays").
#[test]
fn without_the_enqueued_mark_two_deliveries_of_one_id_are_accepted() {
    let protocol = Protocol {
        bodies: vec![0, 0],
        workers: 1,
        faults: 0,
        replays: 0,
        sends: Sends::Either,
        mark: Mark::Dropped,
    };
    // Breadth first: without faults the space is small (411 states).
    let checker = protocol.clone().checker().spawn_bfs().join();
    let found = checker
        .discovery("at most one accepted")
        .expect("the checker found no second accepted without the mark");
    println!(
        "without the mark, two accepted in {} steps:",
        found.clone().into_actions().len()
    );
    for line in zofhook_model::trace(&found) {
        println!("    {line}");
    }
    // The same, step by step: what a Zof resend meets behind a backlog.
    let state = run(
        &protocol,
        &[
            "d0 starts (send beside put)",
            "d0 put lands",
            "d0 send lands",
            "the record's lease ends",
            "d1 starts (send beside put)",
            "d1 put lands",
            "d1 send lands",
        ],
    );
    assert_eq!(state.deliveries[0], Dlv::Answered(Answer::Accepted));
    assert_eq!(state.deliveries[1], Dlv::Answered(Answer::Accepted));
    // With the mark, the same steps answer d1 `duplicate`: the marked record is not taken over.
    let kept = Protocol {
        mark: Mark::Kept,
        ..protocol
    };
    let state = run(
        &kept,
        &[
            "d0 starts (send beside put)",
            "d0 put lands",
            "d0 send lands",
            "d0 mark enqueued lands",
            "d1 starts (send beside put)",
            "d1 put lands",
        ],
    );
    assert_eq!(state.deliveries[0], Dlv::Answered(Answer::Accepted));
    assert_eq!(state.deliveries[1], Dlv::Answered(Answer::Duplicate));
}

fn run_on(protocol: &Protocol, mut state: State, steps: &[&str]) -> State {
    for want in steps {
        let mut actions = Vec::new();
        protocol.actions(&state, &mut actions);
        let action: Action = actions
            .into_iter()
            .find(|a| describe(&state, a) == *want)
            .unwrap_or_else(|| panic!("no step {want:?} in {state:#?}"));
        state = protocol.next_state(&state, action).expect("a step");
    }
    state
}
