//! The worker's claim rules and outcomes on the in-memory ledger.

use super::*;
use crate::config::Config;
use crate::downstream::{DownstreamError, LogDownstream};
use crate::ledger::memory::MemoryLedger;
use crate::ledger::Status;
use async_trait::async_trait;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const T0: i64 = 1_780_000_000_000;

fn message(id: &str) -> Vec<u8> {
    json!({"id": id, "type": "run.completed", "created": "2026-05-20T12:00:00Z",
           "data": {"object": {"organization_id": "org_a", "run_id": "run_1"}}})
    .to_string()
    .into_bytes()
}

/// Fails the first `failures` calls, then succeeds; counts calls.
#[derive(Default)]
struct Flaky {
    failures: usize,
    calls: AtomicUsize,
    seen_outcomes: Mutex<Vec<Option<Value>>>,
}

#[async_trait]
impl Downstream for Flaky {
    async fn deliver(
        &self,
        _event: &Envelope,
        record: &Record,
        _progress: &Progress,
    ) -> Result<Value, DownstreamError> {
        self.seen_outcomes
            .lock()
            .unwrap()
            .push(record.outcome.clone());
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.failures {
            Err(DownstreamError::retryable(format!("sink down (call {n})")))
        } else {
            Ok(json!({"status": "passed"}))
        }
    }
}

fn processor(ledger: Arc<MemoryLedger>, downstream: Arc<dyn Downstream>) -> Processor {
    Processor::new(&Config::default(), ledger, downstream, Arc::new(|| T0))
}

fn record(id: &str, status: Status, lease_until: i64) -> Record {
    Record {
        id: id.into(),
        status,
        kind: "run.completed".into(),
        body_sha256: event::body_sha256(&message(id)),
        organization_id: Some("org_a".into()),
        run_id: Some("run_1".into()),
        received_at: rfc3339(T0 - 1000),
        lease_until,
        lease_token: Some("someone".into()),
        delivery_token: None,
        attempts: 0,
        outcome: None,
        error: None,
        processed_at: None,
        expires_at: T0 / 1000 + 100,
        body: None,
        replays: 0,
    }
}

#[tokio::test]
async fn claims_from_each_claimable_status_and_records_the_outcome() {
    for (status, lease) in [
        (Status::Received, T0 + 10_000),
        (Status::Enqueued, T0 + 10_000),
        (Status::Failed, 0),
        (Status::Processing, T0 - 1),
    ] {
        let ledger = Arc::new(MemoryLedger::new());
        ledger.insert(record("evt_1", status, lease));
        let flaky = Arc::new(Flaky::default());
        let p = processor(ledger.clone(), flaky.clone());
        assert_eq!(
            p.process(&message("evt_1")).await,
            Handled::Processed,
            "{status}"
        );
        let rec = ledger.get("evt_1").await.unwrap().unwrap();
        assert_eq!(rec.status, Status::Processed);
        assert_eq!(rec.outcome, Some(json!({"status": "passed"})));
        assert_eq!(rec.processed_at.as_deref(), Some(rfc3339(T0).as_str()));
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
async fn processed_is_acknowledged_and_skipped() {
    let ledger = Arc::new(MemoryLedger::new());
    ledger.insert(record("evt_1", Status::Processed, 0));
    let flaky = Arc::new(Flaky::default());
    let p = processor(ledger.clone(), flaky.clone());
    assert_eq!(
        p.process(&message("evt_1")).await,
        Handled::AlreadyProcessed
    );
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_live_processing_lease_is_retried_later() {
    let ledger = Arc::new(MemoryLedger::new());
    let busy = record("evt_1", Status::Processing, T0 + 1);
    ledger.insert(busy.clone());
    let flaky = Arc::new(Flaky::default());
    let p = processor(ledger.clone(), flaky.clone());
    let handled = p.process(&message("evt_1")).await;
    assert!(!handled.acknowledged());
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 0);
    assert_eq!(ledger.get("evt_1").await.unwrap(), Some(busy));
}

#[tokio::test]
async fn failure_is_recorded_then_a_retry_succeeds() {
    let ledger = Arc::new(MemoryLedger::new());
    ledger.insert(record("evt_1", Status::Enqueued, 0));
    let flaky = Arc::new(Flaky {
        failures: 2,
        ..Default::default()
    });
    let p = processor(ledger.clone(), flaky.clone());
    for attempt in 1..=2 {
        let handled = p.process(&message("evt_1")).await;
        assert!(matches!(handled, Handled::Retry(ref why) if why.starts_with("sink down")));
        let rec = ledger.get("evt_1").await.unwrap().unwrap();
        assert_eq!(rec.status, Status::Failed);
        assert_eq!(rec.attempts, attempt);
        assert!(rec.error.unwrap().starts_with("sink down"));
    }
    assert_eq!(p.process(&message("evt_1")).await, Handled::Processed);
    let rec = ledger.get("evt_1").await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Processed);
    assert_eq!(rec.error, None);
    assert_eq!(rec.attempts, 2);
}

#[tokio::test]
async fn a_message_without_a_record_is_still_processed() {
    // Its record was rolled back after a send that did reach the queue, or outlived its TTL.
    let ledger = Arc::new(MemoryLedger::new());
    let p = processor(ledger.clone(), Arc::new(LogDownstream));
    assert_eq!(p.process(&message("evt_orphan")).await, Handled::Processed);
    let rec = ledger.get("evt_orphan").await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Processed);
    assert_eq!(rec.outcome, Some(json!({"status": "unknown", "run": null})));
}

/// The receiver sends while it records: a message can arrive before its record. Younger than a
/// receive lease (30 s by default) it waits; older, it is an orphan and is processed.
#[tokio::test]
async fn a_message_without_a_record_waits_for_it_while_younger_than_a_receive_lease() {
    let ledger = Arc::new(MemoryLedger::new());
    let calls = Arc::new(Flaky::default());
    let p = processor(ledger.clone(), calls.clone());
    let young = Some(T0 - 29_999);
    assert_eq!(
        p.process_sent(&message("evt_early"), young).await,
        Handled::NotYet
    );
    assert!(!Handled::NotYet.acknowledged());
    assert_eq!(ledger.get("evt_early").await.unwrap(), None);
    assert_eq!(calls.calls.load(Ordering::SeqCst), 0);
    // Its record arrives: the same message is processed.
    ledger.insert(record("evt_early", Status::Received, T0 + 20_000));
    assert_eq!(
        p.process_sent(&message("evt_early"), young).await,
        Handled::Processed
    );
    // An old message with no record is an orphan.
    let old = Some(T0 - 30_000);
    assert_eq!(
        p.process_sent(&message("evt_old"), old).await,
        Handled::Processed
    );
    assert_eq!(calls.calls.load(Ordering::SeqCst), 2);
}

/// A conflicting delivery (same id, other body, answered 409) sent its message too: dropped,
/// never delivered, the record untouched, whatever its age.
#[tokio::test]
async fn a_conflicting_deliverys_message_is_dropped_unprocessed() {
    let ledger = Arc::new(MemoryLedger::new());
    let recorded = record("evt_1", Status::Enqueued, 0);
    ledger.insert(recorded.clone());
    let calls = Arc::new(Flaky::default());
    let p = processor(ledger.clone(), calls.clone());
    let mut other: Value = serde_json::from_slice(&message("evt_1")).unwrap();
    other["data"]["object"]["run_id"] = json!("run_other");
    let other = other.to_string().into_bytes();
    for sent in [None, Some(T0), Some(T0 - 3_600_000)] {
        let handled = p.process_sent(&other, sent).await;
        assert_eq!(handled, Handled::Dropped);
        assert!(handled.acknowledged());
    }
    assert_eq!(calls.calls.load(Ordering::SeqCst), 0);
    assert_eq!(ledger.get("evt_1").await.unwrap(), Some(recorded));
}

#[tokio::test]
async fn malformed_messages_are_retried_not_panicked_on() {
    let ledger = Arc::new(MemoryLedger::new());
    let p = processor(ledger.clone(), Arc::new(LogDownstream));
    for bad in [&b"not json"[..], b"{}", b"", &[0xff, 0xfe]] {
        assert!(
            matches!(p.process(bad).await, Handled::Retry(ref why) if why.starts_with("malformed message"))
        );
    }
    assert!(ledger.is_empty());
}

#[tokio::test]
async fn an_unavailable_ledger_is_retried() {
    let ledger = Arc::new(MemoryLedger::new());
    ledger.down.store(true, Ordering::SeqCst);
    let flaky = Arc::new(Flaky::default());
    let p = processor(ledger, flaky.clone());
    assert!(!p.process(&message("evt_1")).await.acknowledged());
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 0);
}

/// Records the lease of the claim it is handed, and fails.
#[derive(Default)]
struct LeaseSpy(Mutex<Vec<i64>>);

#[async_trait]
impl Downstream for LeaseSpy {
    async fn deliver(
        &self,
        _event: &Envelope,
        record: &Record,
        _progress: &Progress,
    ) -> Result<Value, DownstreamError> {
        self.0.lock().unwrap().push(record.lease_until);
        Err(DownstreamError::retryable("down"))
    }
}

#[tokio::test]
async fn a_lambda_invocations_claim_lasts_its_remaining_time_plus_a_margin() {
    let ledger = Arc::new(MemoryLedger::new());
    let spy = Arc::new(LeaseSpy::default());
    let p = processor(ledger.clone(), spy.clone());
    // 40 s left in the invocation: the claim ends 45 s from now, not after the 360 s lease.
    let handled = p
        .process_within(&message("evt_1"), None, Duration::from_secs(40))
        .await;
    assert!(!handled.acknowledged());
    assert_eq!(spy.0.lock().unwrap()[0], T0 + 45_000);
    // More time left than the processing lease: the lease caps it.
    p.process_within(&message("evt_2"), None, Duration::from_secs(4000))
        .await;
    assert_eq!(spy.0.lock().unwrap()[1], T0 + 360_000);
}

/// Tells its first sink, then hangs until the work limit stops it.
struct Hangs;

#[async_trait]
impl Downstream for Hangs {
    async fn deliver(
        &self,
        _event: &Envelope,
        _record: &Record,
        progress: &Progress,
    ) -> Result<Value, DownstreamError> {
        progress.set(&json!({"status": "passed", "run": null, "sinks": {"notify": "ok"}}));
        std::future::pending().await
    }
}

#[tokio::test]
async fn an_attempt_stopped_by_its_work_limit_keeps_the_sinks_it_told() {
    let ledger = Arc::new(MemoryLedger::new());
    let p = processor(ledger.clone(), Arc::new(Hangs));
    // 2 s left: the work stops after 1 s, leaving time to record the failure.
    let handled = p
        .process_within(&message("evt_1"), None, Duration::from_secs(2))
        .await;
    assert!(!handled.acknowledged());
    let stored = ledger.get("evt_1").await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Failed);
    assert!(stored.error.unwrap().contains("outlived"));
    assert_eq!(stored.outcome.unwrap()["sinks"], json!({"notify": "ok"}));
}
