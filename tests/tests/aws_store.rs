//! The DynamoDB ledger, the SQS queue and the Secrets Manager secret through the real
//! `aws-sdk-*` clients against the AWS API emulator.

use e2e::{create_queue, create_table, event, sdk, sign};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use zofhook_core::config::Config;
use zofhook_core::event::body_sha256;
use zofhook_core::ledger::dynamodb::{from_item, to_item, DynamoLedger};
use zofhook_core::ledger::{Begin, Claim, Ledger, Record, Status};
use zofhook_core::process::Handled;
use zofhook_core::queue::sqs::SqsQueue;
use zofhook_core::receive::{Body, Delivery, Receiver, Verdict};
use zofhook_core::secrets::secretsmanager::SecretsManagerSecrets;
use zofhook_core::secrets::{CachedSecrets, SecretSource, StaticSecrets};
use zofhook_core::signature::Secrets;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn now() -> i64 {
    zofhook_core::now_ms()
}

fn record(id: &str, status: Status, lease_until: i64, token: &str) -> Record {
    Record {
        id: id.into(),
        status,
        kind: "run.completed".into(),
        body_sha256: body_sha256(&event(id, "org_a", "run_1")),
        organization_id: Some("org_a".into()),
        run_id: Some("run_1".into()),
        received_at: zofhook_core::rfc3339(now()),
        lease_until,
        lease_token: Some(token.into()),
        delivery_token: Some(token.into()),
        attempts: 0,
        outcome: None,
        error: None,
        processed_at: None,
        expires_at: now() / 1000 + 3600,
        body: None,
        replays: 0,
    }
}

async fn ledger() -> DynamoLedger {
    let sdk = sdk().await;
    let (client, table) = create_table(&sdk).await;
    DynamoLedger::new(client, table)
}

fn receiver(config: Config, ledger: Arc<dyn Ledger>, queue: SqsQueue) -> Receiver {
    Receiver::new(
        Arc::new(config),
        Arc::new(StaticSecrets::new(Secrets::parse(SECRET, None).unwrap())),
        ledger,
        Arc::new(queue),
        zofhook_core::system_clock(),
    )
}

async fn deliver(receiver: &Receiver, body: &[u8]) -> zofhook_core::receive::Reply {
    let (name, value) = sign(SECRET, body);
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
        value.parse().unwrap(),
    );
    receiver
        .receive(Delivery {
            method: &http::Method::POST,
            headers: &headers,
            body: Body::Raw(body),
        })
        .await
}

#[tokio::test]
async fn every_field_round_trips_through_dynamodb() {
    let l = ledger().await;
    let mut r = record("evt_rt", Status::Failed, 42, "tok");
    r.attempts = 3;
    r.outcome = Some(json!({"status": "passed", "run": {"id": "run_1"}}));
    r.error = Some("sink down".into());
    r.processed_at = Some("2026-05-20T12:00:01Z".into());
    l.client()
        .put_item()
        .table_name(l.table())
        .set_item(Some(to_item(&r)))
        .send()
        .await
        .unwrap();
    assert_eq!(l.get("evt_rt").await.unwrap(), Some(r.clone()));
    assert_eq!(from_item(&to_item(&r)).unwrap(), r);
    assert_eq!(l.get("evt_absent").await.unwrap(), None);
}

#[tokio::test]
async fn begin_is_one_conditional_put_returning_the_stored_item() {
    let l = ledger().await;
    let first = record("evt_1", Status::Received, now() + 30_000, "first");
    assert_eq!(l.begin(&first, now()).await.unwrap(), Begin::Started);
    let second = record("evt_1", Status::Received, now() + 30_000, "second");
    match l.begin(&second, now()).await.unwrap() {
        // ALL_OLD: the refused put hands back the record as stored, token and all.
        Begin::Exists(old) => assert_eq!(*old, first),
        other => panic!("expected Exists, got {other:?}"),
    }
    assert_eq!(l.get("evt_1").await.unwrap(), Some(first));
}

#[tokio::test]
async fn a_stuck_received_record_is_taken_over_after_its_lease() {
    let l = ledger().await;
    let stuck = record("evt_stuck", Status::Received, now() - 1, "dead");
    assert_eq!(
        l.begin(&stuck, now() - 60_000).await.unwrap(),
        Begin::Started
    );
    let fresh = record("evt_stuck", Status::Received, now() + 30_000, "alive");
    assert_eq!(l.begin(&fresh, now()).await.unwrap(), Begin::Started);
    let stored = l.get("evt_stuck").await.unwrap().unwrap();
    assert_eq!(stored.lease_token.as_deref(), Some("alive"));
    // The dead holder can no longer mark it enqueued or delete it.
    assert!(!l.mark_enqueued("evt_stuck", "dead").await.unwrap());
    assert!(!l.abandon("evt_stuck", "dead").await.unwrap());
    assert!(l.mark_enqueued("evt_stuck", "alive").await.unwrap());
    // An enqueued record is never taken over, even with its lease long gone (10 minutes; not an
    // hour: the record's retention is an hour, and a probe at an hour's end crossed it whenever
    // a second passed between the write and the probe).
    let late = record("evt_stuck", Status::Received, now() + 30_000, "late");
    assert!(matches!(
        l.begin(&late, now() + 600_000).await.unwrap(),
        Begin::Exists(_)
    ));
}

#[tokio::test]
async fn an_expired_record_is_replaced() {
    let l = ledger().await;
    let mut old = record("evt_old", Status::Processed, 0, "old");
    old.expires_at = now() / 1000 - 10;
    l.begin(&old, 0).await.unwrap();
    let new = record("evt_old", Status::Received, now() + 30_000, "new");
    assert_eq!(l.begin(&new, now()).await.unwrap(), Begin::Started);
}

#[tokio::test]
async fn claim_rules_for_every_status() {
    let l = ledger().await;
    let t = now();
    let cases = [
        (Status::Received, t + 60_000, "claimed"),
        (Status::Enqueued, t + 60_000, "claimed"),
        (Status::Failed, 0, "claimed"),
        (Status::Processing, t - 1, "claimed"),
        (Status::Processing, t + 60_000, "busy"),
        (Status::Processed, 0, "processed"),
    ];
    for (i, (status, lease, want)) in cases.into_iter().enumerate() {
        let id = format!("evt_claim_{i}");
        l.client()
            .put_item()
            .table_name(l.table())
            .set_item(Some(to_item(&record(&id, status, lease, "holder"))))
            .send()
            .await
            .unwrap();
        let claim = record(&id, Status::Processing, t + 180_000, "worker");
        let got = l.claim(&claim, true, t).await.unwrap();
        let kind = match &got {
            Claim::Claimed(r) => {
                assert_eq!(r.status, Status::Processing);
                assert_eq!(r.lease_token.as_deref(), Some("worker"));
                assert_eq!(r.lease_until, t + 180_000);
                "claimed"
            }
            Claim::Busy(r) => {
                assert_eq!(r.lease_token.as_deref(), Some("holder"));
                "busy"
            }
            Claim::Processed(_) => "processed",
            other => panic!("{other:?}"),
        };
        assert_eq!(kind, want, "{status} lease {lease}");
    }
    // No record at all: the claim creates it from the message.
    let orphan = record("evt_orphan", Status::Processing, t + 180_000, "worker");
    assert!(matches!(
        l.claim(&orphan, true, t).await.unwrap(),
        Claim::Claimed(_)
    ));
    let stored = l.get("evt_orphan").await.unwrap().unwrap();
    assert_eq!(stored.run_id.as_deref(), Some("run_1"));
    assert_eq!(stored.status, Status::Processing);
}

#[tokio::test]
async fn finish_and_fail_need_the_current_token() {
    let l = ledger().await;
    let t = now();
    let claim = record("evt_tok", Status::Processing, t + 60_000, "mine");
    l.claim(&claim, true, t).await.unwrap();
    assert!(!l.fail("evt_tok", "theirs", "nope", None).await.unwrap());
    assert!(l.fail("evt_tok", "mine", "sink down", None).await.unwrap());
    let failed = l.get("evt_tok").await.unwrap().unwrap();
    assert_eq!((failed.status, failed.attempts), (Status::Failed, 1));
    assert_eq!(failed.error.as_deref(), Some("sink down"));
    // A failed record is not `processing`: finishing it without a new claim is refused.
    assert!(!l.finish("evt_tok", "mine", &json!({}), "x").await.unwrap());
    let again = record("evt_tok", Status::Processing, t + 60_000, "mine2");
    l.claim(&again, true, t).await.unwrap();
    assert!(!l.finish("evt_tok", "mine", &json!({}), "x").await.unwrap());
    assert!(l
        .finish(
            "evt_tok",
            "mine2",
            &json!({"status": "passed"}),
            "2026-01-01T00:00:00Z"
        )
        .await
        .unwrap());
    let done = l.get("evt_tok").await.unwrap().unwrap();
    assert_eq!(done.status, Status::Processed);
    assert_eq!(done.error, None);
    assert_eq!(done.attempts, 1);
    assert_eq!(done.outcome, Some(json!({"status": "passed"})));
}

#[tokio::test]
async fn a_failed_queue_send_rolls_the_record_back() {
    let sdk = sdk().await;
    let l = Arc::new(ledger().await);
    let (sqs, _) = create_queue(&sdk).await;
    let missing = format!("{}/123456789012/no-such-queue", e2e::endpoint());
    let r = receiver(Config::default(), l.clone(), SqsQueue::new(sqs, missing));
    let body = event("evt_rollback", "org_a", "run_1");
    let reply = deliver(&r, &body).await;
    assert_eq!(reply.verdict, Verdict::Unavailable);
    assert_eq!(reply.body, json!({"error": "unavailable"}));
    assert_eq!(l.get("evt_rollback").await.unwrap(), None, "rolled back");
}

#[tokio::test]
async fn fifty_concurrent_deliveries_of_one_id_accept_exactly_once() {
    let sdk = sdk().await;
    let l: Arc<dyn Ledger> = Arc::new(ledger().await);
    let (sqs, url) = create_queue(&sdk).await;
    let r = Arc::new(receiver(
        Config::default(),
        l.clone(),
        SqsQueue::new(sqs.clone(), url.clone()),
    ));
    let body = Arc::new(event("evt_storm", "org_a", "run_1"));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (r, body) = (r.clone(), body.clone());
        tasks.push(tokio::spawn(
            async move { deliver(&r, &body).await.verdict },
        ));
    }
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    for t in tasks {
        let verdict = t.await.unwrap();
        assert!(
            matches!(
                verdict,
                Verdict::Accepted | Verdict::Duplicate | Verdict::InProgress
            ),
            "{verdict:?}"
        );
        *counts.entry(verdict.as_str()).or_default() += 1;
    }
    assert_eq!(counts.get("accepted"), Some(&1), "{counts:?}");
    assert_eq!(
        l.get("evt_storm").await.unwrap().unwrap().status,
        Status::Enqueued
    );
    // The first sent beside its put; the others, repeats of an id this receiver began, put
    // first and send only if their put won (when it landed before the first one's): one or
    // two messages, never one per delivery. The worker processes the event once.
    let messages = e2e::drain(&sqs, &url).await;
    assert!((1..=2).contains(&messages.len()), "{}", messages.len());
    assert!(messages
        .iter()
        .all(|m| m.body().unwrap().as_bytes() == body.as_slice()));
    assert_eq!(process_all(&l, &messages).await, (1, messages.len() - 1));
}

#[tokio::test]
async fn secrets_manager_secrets_load_and_rotate() {
    let sdk = sdk().await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let arn = e2e::create_secret(
        &client,
        "webhook-secret",
        r#"{"current":"one","previous":""}"#,
    )
    .await;
    let cache = CachedSecrets::load(
        SecretsManagerSecrets::new(client.clone(), &arn),
        Duration::ZERO,
    )
    .await
    .unwrap();
    assert_eq!(*cache.current(), Secrets::parse("one", None).unwrap());
    client
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(r#"{"current":"two","previous":"one"}"#)
        .send()
        .await
        .unwrap();
    let fresh = cache.refresh().await.expect("rotation picked up");
    assert_eq!(*fresh, Secrets::parse("two", Some("one")).unwrap());
    // A missing secret fails closed.
    let missing = SecretsManagerSecrets::new(
        client,
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope",
    );
    assert!(CachedSecrets::load(missing, Duration::ZERO).await.is_err());
}

/// A queue whose send never returns: the process "dies" between the ledger write and the send.
struct DiesOnSend;

#[async_trait::async_trait]
impl zofhook_core::queue::Queue for DiesOnSend {
    async fn send(&self, _: &str, _: &[u8]) -> Result<(), zofhook_core::queue::QueueError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_delivery_killed_between_ledger_write_and_send_is_re_enqueued_by_the_next_one() {
    let sdk = sdk().await;
    let l: Arc<dyn Ledger> = Arc::new(ledger().await);
    let (sqs, url) = create_queue(&sdk).await;
    // Default settings (a 30 s receive lease). The next process's clock is moved past the lease
    // instead of waiting it out: the lease is compared with the caller's `now` in the write's
    // condition, so this is the takeover DynamoDB sees at that time.
    let body = event("evt_killed", "org_a", "run_1");
    let dying = Receiver::new(
        Arc::new(Config::default()),
        Arc::new(StaticSecrets::new(Secrets::parse(SECRET, None).unwrap())),
        l.clone(),
        Arc::new(DiesOnSend),
        zofhook_core::system_clock(),
    );
    // The "process" is killed while it waits on the send: its future is dropped.
    let _ = tokio::time::timeout(Duration::from_millis(1000), deliver(&dying, &body)).await;
    assert_eq!(
        l.get("evt_killed").await.unwrap().unwrap().status,
        Status::Received
    );
    assert!(e2e::drain(&sqs, &url).await.is_empty(), "never sent");

    let ahead = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let clock: zofhook_core::Clock = {
        let ahead = ahead.clone();
        Arc::new(move || zofhook_core::now_ms() + ahead.load(std::sync::atomic::Ordering::SeqCst))
    };
    let next = Receiver::new(
        Arc::new(Config::default()),
        Arc::new(StaticSecrets::new(Secrets::parse(SECRET, None).unwrap())),
        l.clone(),
        Arc::new(SqsQueue::new(sqs.clone(), url.clone())),
        clock,
    );
    // Within the dead delivery's lease: Zof is asked to come back.
    let reply = deliver(&next, &body).await;
    assert_eq!(reply.verdict, Verdict::InProgress);
    let lease_ms = i64::try_from(Config::default().receive_lease.as_millis()).unwrap();
    ahead.store(lease_ms + 1_000, std::sync::atomic::Ordering::SeqCst);
    // After it: taken over, and this time enqueued.
    assert_eq!(deliver(&next, &body).await.verdict, Verdict::Accepted);
    assert_eq!(
        l.get("evt_killed").await.unwrap().unwrap().status,
        Status::Enqueued
    );
    // The `in_progress` delivery's send and the takeover's: one event, processed once.
    let messages = e2e::drain(&sqs, &url).await;
    assert_eq!(messages.len(), 2);
    assert_eq!(process_all(&l, &messages).await, (1, 1));
}

/// Runs each message through a worker on `ledger`: (processed, already processed).
async fn process_all(
    ledger: &Arc<dyn Ledger>,
    messages: &[aws_sdk_sqs::types::Message],
) -> (usize, usize) {
    let processor = zofhook_core::process::Processor::new(
        &Config::default(),
        ledger.clone(),
        Arc::new(zofhook_core::downstream::LogDownstream),
        zofhook_core::system_clock(),
    );
    let (mut processed, mut already) = (0, 0);
    for m in messages {
        match processor
            .process_sent(m.body().unwrap().as_bytes(), Some(zofhook_core::now_ms()))
            .await
        {
            Handled::Processed => processed += 1,
            Handled::AlreadyProcessed => already += 1,
            other => panic!("{other:?}"),
        }
    }
    (processed, already)
}

/// `zofhook --aws redrive` drains the DLQ: more messages than one receive returns (25, at 10 a
/// receive), all moved to the queue with their bodies, the count reported, the DLQ left empty.
/// It long-polls, so an empty answer means an empty DLQ (a short poll samples some of SQS's
/// servers and can answer empty while messages remain). The emulator does not sample, so this
/// holds the drain and the report; the long poll itself is AWS's documented rule.
#[tokio::test]
async fn redrive_drains_the_dead_letter_queue_and_says_how_many() {
    let sdk = sdk().await;
    let (sqs, queue_url) = create_queue(&sdk).await;
    let (_, dlq_url) = create_queue(&sdk).await;
    for i in 0..25 {
        let body = String::from_utf8(event(&format!("evt_dead_{i}"), "org_a", "run_1")).unwrap();
        sqs.send_message()
            .queue_url(&dlq_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let dir = e2e::data_dir();
    let mut env = e2e::aws_env();
    env.push(("ZOFHOOK_SECRET", "redrive-test".to_string()));
    let (code, out, err) = e2e::zofhook(
        &[
            "--data-dir",
            dir.to_str().unwrap(),
            "--aws",
            "--queue-url",
            &queue_url,
            "--dlq-url",
            &dlq_url,
            "redrive",
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("moved 25 dead-lettered event(s) back to the queue"),
        "{out}"
    );
    assert!(e2e::drain(&sqs, &dlq_url).await.is_empty());
    let moved = e2e::drain(&sqs, &queue_url).await;
    let mut ids: Vec<String> = moved
        .iter()
        .map(|m| {
            let body: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
            body["id"].as_str().unwrap().to_string()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 25, "{ids:?}");
}
