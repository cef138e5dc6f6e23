//! Every row of docs/design.md section 3's status table, on the in-memory ledger and queue.

use super::*;
use crate::clock::rfc3339;
use crate::config::Config;
use crate::ledger::memory::MemoryLedger;
use crate::ledger::{Begin, Status};
use crate::queue::memory::MemoryQueue;
use crate::secrets::StaticSecrets;
use crate::signature::{Scheme, Secret, Secrets};
use async_trait::async_trait;
use http::{HeaderName, HeaderValue};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const T0: i64 = 1_780_000_000_000;

struct Rig {
    receiver: Receiver,
    ledger: Arc<MemoryLedger>,
    queue: Arc<MemoryQueue>,
    now: Arc<AtomicI64>,
    config: Arc<Config>,
}

fn rig_with(settings: &[(&str, &str)]) -> Rig {
    let map: HashMap<String, String> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config = Arc::new(Config::from_lookup(|k| map.get(k).cloned()).unwrap());
    let ledger = Arc::new(MemoryLedger::new());
    let queue = Arc::new(MemoryQueue::new());
    let now = Arc::new(AtomicI64::new(T0));
    let clock_now = now.clone();
    let receiver = Receiver::new(
        config.clone(),
        Arc::new(StaticSecrets::new(Secrets::parse(SECRET, None).unwrap())),
        ledger.clone(),
        queue.clone(),
        Arc::new(move || clock_now.load(Ordering::SeqCst)),
    );
    Rig {
        receiver,
        ledger,
        queue,
        now,
        config,
    }
}

fn rig() -> Rig {
    rig_with(&[])
}

fn event(id: &str, kind: &str, org: &str) -> Vec<u8> {
    json!({"id": id, "type": kind, "created": "2026-05-20T12:00:00Z",
           "data": {"object": {"id": "res_1", "organization_id": org, "run_id": "run_xyz"}}})
    .to_string()
    .into_bytes()
}

impl Rig {
    fn signed(&self, body: &[u8]) -> HeaderMap {
        let v = Verifier::new(
            self.config.scheme,
            self.config.signature_header.clone(),
            self.config.tolerance_seconds,
        );
        let mut h = v.sign_headers(&Secret::parse(SECRET).unwrap(), body, T0 / 1000, "msg_1");
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h
    }

    async fn post(&self, headers: &HeaderMap, body: &[u8]) -> Reply {
        self.receiver
            .receive(Delivery {
                method: &Method::POST,
                headers,
                body: Body::Raw(body),
            })
            .await
    }

    async fn send(&self, body: &[u8]) -> Reply {
        self.post(&self.signed(body), body).await
    }
}

fn assert_reply(reply: &Reply, status: u16, body: Value) {
    assert_eq!(reply.status(), status, "{reply:?}");
    assert_eq!(reply.body, body, "{reply:?}");
}

#[tokio::test]
async fn new_event_is_recorded_enqueued_and_accepted() {
    let r = rig();
    let body = event("evt_1", "run.completed", "org_a");
    let reply = r.send(&body).await;
    assert_reply(&reply, 200, json!({"status": "accepted", "id": "evt_1"}));
    assert_eq!(
        reply.headers()[0],
        ("content-type", "application/json".to_string())
    );
    let rec = r.ledger.get("evt_1").await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Enqueued);
    assert_eq!(rec.body_sha256, event::body_sha256(&body));
    assert_eq!(rec.run_id.as_deref(), Some("run_xyz"));
    assert_eq!(rec.organization_id.as_deref(), Some("org_a"));
    assert_eq!(rec.expires_at, T0 / 1000 + 30 * 86_400);
    assert_eq!(r.queue.sent(), vec![("evt_1".to_string(), body)]);
}

#[tokio::test]
async fn duplicate_of_recorded_event_is_duplicate_and_unchanged() {
    let r = rig();
    let body = event("evt_1", "run.completed", "org_a");
    r.send(&body).await;
    let before = r.ledger.get("evt_1").await.unwrap();
    let reply = r.send(&body).await;
    assert_reply(&reply, 200, json!({"status": "duplicate", "id": "evt_1"}));
    assert_eq!(r.ledger.get("evt_1").await.unwrap(), before);
    // This process began the id lately: the repeat put first, and sent nothing.
    assert_eq!(r.queue.sent().len(), 1);
    // Another process (another Lambda environment) sends beside its refused put: a copy of the
    // same event, which the worker finds handled.
    let elsewhere = Receiver::new(
        r.config.clone(),
        Arc::new(StaticSecrets::new(Secrets::parse(SECRET, None).unwrap())),
        r.ledger.clone(),
        r.queue.clone(),
        Arc::new(|| T0),
    );
    let reply = elsewhere
        .receive(Delivery {
            method: &Method::POST,
            headers: &r.signed(&body),
            body: Body::Raw(&body),
        })
        .await;
    assert_eq!(reply.verdict, Verdict::Duplicate);
    assert_eq!(r.ledger.get("evt_1").await.unwrap(), before);
    assert_eq!(r.queue.sent(), vec![("evt_1".to_string(), body.clone()); 2]);
}

#[tokio::test]
async fn other_event_types_are_ignored_and_not_stored() {
    let r = rig();
    let reply = r.send(&event("evt_2", "run.started", "org_a")).await;
    assert_reply(&reply, 200, json!({"status": "ignored", "id": "evt_2"}));
    assert!(r.ledger.is_empty());
    assert!(r.queue.sent().is_empty());
    // `*` admits every type.
    let all = rig_with(&[("ZOFHOOK_EVENT_TYPES", "*")]);
    let reply = all.send(&event("evt_2", "run.started", "org_a")).await;
    assert_eq!(reply.verdict, Verdict::Accepted);
}

#[tokio::test]
async fn other_methods_are_405() {
    let r = rig();
    let body = event("evt_1", "run.completed", "org_a");
    for method in [
        Method::GET,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
    ] {
        let reply = r
            .receiver
            .receive(Delivery {
                method: &method,
                headers: &r.signed(&body),
                body: Body::Raw(&body),
            })
            .await;
        assert_reply(&reply, 405, json!({"error": "method_not_allowed"}));
        assert!(reply.headers().contains(&("allow", "POST".to_string())));
    }
    assert!(r.ledger.is_empty());
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let r = rig_with(&[("ZOFHOOK_MAX_BODY_BYTES", "200")]);
    let mut body = event("evt_1", "run.completed", "org_a");
    body.extend(std::iter::repeat_n(b' ', 201 - body.len()));
    let reply = r.send(&body).await;
    assert_reply(&reply, 413, json!({"error": "payload_too_large"}));
    // Exactly at the limit is fine.
    body.pop();
    assert_eq!(r.send(&body).await.verdict, Verdict::Accepted);
    // Base64 bodies count their decoded size, and huge ones are refused before decoding.
    let big = B64.encode(vec![b' '; 201]);
    let reply = r
        .receiver
        .receive(Delivery {
            method: &Method::POST,
            headers: &HeaderMap::new(),
            body: Body::Base64(&big),
        })
        .await;
    assert_eq!(reply.status(), 413);
    let huge = "A".repeat(10_000_000);
    let reply = r
        .receiver
        .receive(Delivery {
            method: &Method::POST,
            headers: &HeaderMap::new(),
            body: Body::Base64(&huge),
        })
        .await;
    assert_eq!(reply.status(), 413);
    assert_eq!(r.ledger.len(), 1);
}

#[tokio::test]
async fn non_json_content_types_are_415() {
    let r = rig();
    let body = event("evt_1", "run.completed", "org_a");
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
        "json",
    ] {
        let mut h = r.signed(&body);
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        assert_reply(
            &r.post(&h, &body).await,
            415,
            json!({"error": "unsupported_media_type"}),
        );
    }
    assert!(r.ledger.is_empty());
    for ct in [
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/cloudevents+json",
    ] {
        let mut h = r.signed(&body);
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        assert_eq!(r.post(&h, &body).await.status(), 200, "{ct}");
    }
    // No Content-Type at all is accepted.
    let r = rig();
    let mut h = r.signed(&body);
    h.remove(header::CONTENT_TYPE);
    assert_eq!(r.post(&h, &body).await.verdict, Verdict::Accepted);
}

#[tokio::test]
async fn bad_signatures_are_401_without_detail_and_not_stored() {
    let r = rig();
    let body = event("evt_1", "run.completed", "org_a");
    let good = r.signed(&body);
    let mut cases: Vec<HeaderMap> = Vec::new();
    let mut missing = good.clone();
    missing.remove("zof-signature");
    cases.push(missing);
    for bad in [
        "",
        "v1,",
        "sha256=abc",
        "sha256=00",
        &format!("sha256={}", "0".repeat(64)),
    ] {
        let mut h = good.clone();
        h.insert("zof-signature", HeaderValue::from_str(bad).unwrap());
        cases.push(h);
    }
    for h in &cases {
        assert_reply(
            &r.post(h, &body).await,
            401,
            json!({"error": "invalid_signature"}),
        );
    }
    // Signed body, different bytes received.
    let mut tampered = body.clone();
    tampered.push(b' ');
    assert_reply(
        &r.post(&good, &tampered).await,
        401,
        json!({"error": "invalid_signature"}),
    );
    assert!(r.ledger.is_empty());
    assert!(r.queue.sent().is_empty());
}

#[tokio::test]
async fn stale_timestamps_are_401() {
    let r = rig_with(&[("ZOFHOOK_SIGNATURE_SCHEME", "timestamped")]);
    let body = event("evt_1", "run.completed", "org_a");
    let h = r.signed(&body);
    r.now.store(T0 + 301_000, Ordering::SeqCst);
    assert_reply(
        &r.post(&h, &body).await,
        401,
        json!({"error": "invalid_signature"}),
    );
    r.now.store(T0 - 301_000, Ordering::SeqCst);
    assert_eq!(r.post(&h, &body).await.status(), 401);
    r.now.store(T0 + 299_000, Ordering::SeqCst);
    assert_eq!(r.post(&h, &body).await.status(), 200);
}

#[tokio::test]
async fn signed_but_invalid_envelopes_are_400_with_detail() {
    let r = rig();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "body is not valid JSON"),
        (b"[]".to_vec(), "body is not a JSON object"),
        (br#"{"type":"run.completed","created":"2026-05-20T12:00:00Z","data":{"object":{}}}"#.to_vec(), "field id is missing"),
        (br#"{"id":"bad id","type":"run.completed","created":"2026-05-20T12:00:00Z","data":{"object":{}}}"#.to_vec(), "field id must be"),
        (br#"{"id":"e","created":"2026-05-20T12:00:00Z","data":{"object":{}}}"#.to_vec(), "field type is missing"),
        (br#"{"id":"e","type":"run.completed","data":{"object":{}}}"#.to_vec(), "field created is missing"),
        (br#"{"id":"e","type":"run.completed","created":"2026-05-20T12:00:00Z"}"#.to_vec(), "field data.object is missing"),
    ];
    for (body, detail) in cases {
        let reply = r.send(&body).await;
        assert_eq!(reply.status(), 400, "{reply:?}");
        assert_eq!(reply.body["error"], "invalid_event");
        assert!(
            reply.body["detail"].as_str().unwrap().starts_with(detail),
            "{reply:?}"
        );
    }
    assert!(r.ledger.is_empty());
}

#[tokio::test]
async fn undecodable_base64_body_is_400_never_a_panic() {
    let r = rig();
    for text in ["%%%not base64%%%", "abc", "=="] {
        let reply = r
            .receiver
            .receive(Delivery {
                method: &Method::POST,
                headers: &HeaderMap::new(),
                body: Body::Base64(text),
            })
            .await;
        assert_reply(
            &reply,
            400,
            json!({"error": "invalid_event", "detail": "body is not valid base64"}),
        );
    }
    // A good base64 body is verified on its decoded bytes.
    let body = event("evt_b64", "run.completed", "org_a");
    let encoded = B64.encode(&body);
    let reply = r
        .receiver
        .receive(Delivery {
            method: &Method::POST,
            headers: &r.signed(&body),
            body: Body::Base64(&encoded),
        })
        .await;
    assert_eq!(reply.verdict, Verdict::Accepted);
    assert_eq!(r.queue.sent()[0].1, body);
}

#[tokio::test]
async fn wrong_organization_is_403() {
    let r = rig_with(&[("ZOFHOOK_ORGANIZATION_ID", "org_a")]);
    assert_reply(
        &r.send(&event("evt_1", "run.completed", "org_b")).await,
        403,
        json!({"error": "wrong_organization"}),
    );
    let no_org = json!({"id": "evt_2", "type": "run.completed", "created": "2026-05-20T12:00:00Z", "data": {"object": {}}});
    assert_eq!(r.send(no_org.to_string().as_bytes()).await.status(), 403);
    assert!(r.ledger.is_empty());
    assert_eq!(
        r.send(&event("evt_1", "run.completed", "org_a"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn same_id_different_body_is_409_and_unchanged() {
    let r = rig();
    r.send(&event("evt_1", "run.completed", "org_a")).await;
    let before = r.ledger.get("evt_1").await.unwrap();
    let reply = r.send(&event("evt_1", "run.completed", "org_other")).await;
    assert_reply(&reply, 409, json!({"error": "conflict", "id": "evt_1"}));
    assert_eq!(r.ledger.get("evt_1").await.unwrap(), before);
    // The id was begun here lately: put first, nothing sent. (From another process its message
    // would go out with the refused put, and the worker would drop it: another body.)
    assert_eq!(r.queue.sent().len(), 1);
}

#[tokio::test]
async fn in_flight_delivery_is_503_in_progress_with_retry_after() {
    let r = rig();
    let body = event("evt_1", "run.completed", "org_a");
    let mut stuck = stuck_record(&body, T0 + 12_500);
    stuck.status = Status::Received;
    r.ledger.insert(stuck.clone());
    let reply = r.send(&body).await;
    assert_reply(&reply, 503, json!({"error": "in_progress"}));
    assert_eq!(reply.retry_after, Some(13));
    assert!(reply.headers().contains(&("retry-after", "13".to_string())));
    assert_eq!(r.ledger.get("evt_1").await.unwrap(), Some(stuck));
    assert_eq!(r.queue.sent().len(), 1);
}

fn stuck_record(body: &[u8], lease_until: i64) -> Record {
    Record {
        id: "evt_1".into(),
        status: Status::Received,
        kind: "run.completed".into(),
        body_sha256: event::body_sha256(body),
        organization_id: Some("org_a".into()),
        run_id: Some("run_xyz".into()),
        received_at: rfc3339(T0 - 60_000),
        lease_until,
        lease_token: Some("dead-invocation".into()),
        delivery_token: None,
        attempts: 0,
        outcome: None,
        error: None,
        processed_at: None,
        expires_at: T0 / 1000 + 1000,
        body: None,
        replays: 0,
    }
}

#[tokio::test]
async fn expired_lease_of_a_stuck_delivery_is_taken_over_and_enqueued() {
    let r = rig();
    let body = event("evt_1", "run.completed", "org_a");
    r.ledger.insert(stuck_record(&body, T0 - 1));
    let reply = r.send(&body).await;
    assert_eq!(reply.verdict, Verdict::Accepted);
    let rec = r.ledger.get("evt_1").await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Enqueued);
    assert_ne!(rec.lease_token.as_deref(), Some("dead-invocation"));
    assert_eq!(r.queue.sent().len(), 1);
}

#[tokio::test]
async fn expired_retention_starts_afresh() {
    let r = rig();
    let body = event("evt_1", "run.completed", "org_a");
    let mut old = stuck_record(&body, 0);
    old.status = Status::Processed;
    old.expires_at = T0 / 1000 - 1;
    r.ledger.insert(old);
    assert_eq!(r.send(&body).await.verdict, Verdict::Accepted);
}

#[tokio::test]
async fn queue_failure_rolls_back_and_answers_503() {
    let r = rig();
    r.queue.down.store(true, Ordering::SeqCst);
    let body = event("evt_1", "run.completed", "org_a");
    let reply = r.send(&body).await;
    assert_reply(&reply, 503, json!({"error": "unavailable"}));
    assert_eq!(reply.retry_after, Some(UNAVAILABLE_RETRY_AFTER));
    assert!(r.ledger.is_empty(), "the record must be rolled back");
    // Zof's retry starts clean.
    r.queue.down.store(false, Ordering::SeqCst);
    assert_eq!(r.send(&body).await.verdict, Verdict::Accepted);
}

#[tokio::test]
async fn ledger_failure_answers_503_and_records_nothing() {
    let r = rig();
    r.ledger.down.store(true, Ordering::SeqCst);
    let reply = r.send(&event("evt_1", "run.completed", "org_a")).await;
    assert_reply(&reply, 503, json!({"error": "unavailable"}));
    r.ledger.down.store(false, Ordering::SeqCst);
    assert_eq!(r.ledger.get("evt_1").await.unwrap(), None);
    // Its message went out with the failed put: after a receive lease the worker takes it for
    // an orphan and processes it; Zof's retry then hears `duplicate`.
    assert_eq!(r.queue.sent().len(), 1);
}

/// A ledger that never answers: the deadline must still hold.
struct HungLedger;

#[async_trait]
impl Ledger for HungLedger {
    async fn begin(&self, _: &Record, _: i64) -> Result<Begin, LedgerError> {
        std::future::pending().await
    }
    async fn mark_enqueued(&self, _: &str, _: &str) -> Result<bool, LedgerError> {
        std::future::pending().await
    }
    async fn abandon(&self, _: &str, _: &str) -> Result<bool, LedgerError> {
        std::future::pending().await
    }
    async fn claim(
        &self,
        _: &Record,
        _: bool,
        _: i64,
    ) -> Result<crate::ledger::Claim, LedgerError> {
        std::future::pending().await
    }
    async fn finish(&self, _: &str, _: &str, _: &Value, _: &str) -> Result<bool, LedgerError> {
        std::future::pending().await
    }
    async fn fail(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: Option<&Value>,
    ) -> Result<bool, LedgerError> {
        std::future::pending().await
    }
    async fn get(&self, _: &str) -> Result<Option<Record>, LedgerError> {
        std::future::pending().await
    }
    async fn replay(&self, _: &str, _: i64) -> Result<crate::ledger::ReplayStart, LedgerError> {
        std::future::pending().await
    }
    async fn list(
        &self,
        _: &crate::ledger::Selection,
        _: Option<&str>,
    ) -> Result<crate::ledger::Page, LedgerError> {
        std::future::pending().await
    }
    async fn note_replay(&self, _: &str, _: u32, _: i64) -> Result<(), LedgerError> {
        std::future::pending().await
    }
    async fn replays_since(&self, _: &str) -> Result<Vec<crate::ledger::Noted>, LedgerError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn hung_store_answers_503_by_the_deadline() {
    let config = Arc::new(Config::default());
    let queue = Arc::new(MemoryQueue::new());
    let receiver = Receiver::new(
        config.clone(),
        Arc::new(StaticSecrets::new(Secrets::parse(SECRET, None).unwrap())),
        Arc::new(HungLedger),
        queue.clone(),
        Arc::new(|| T0),
    );
    let body = event("evt_1", "run.completed", "org_a");
    let v = Verifier::new(
        Scheme::HmacSha256,
        HeaderName::from_static("zof-signature"),
        300,
    );
    let h = v.sign_headers(&Secret::parse(SECRET).unwrap(), &body, T0 / 1000, "");
    let started = tokio::time::Instant::now();
    let reply = receiver
        .receive(Delivery {
            method: &Method::POST,
            headers: &h,
            body: Body::Raw(&body),
        })
        .await;
    assert_eq!(reply.verdict, Verdict::Unavailable);
    // The per-call timeouts answer first, well before the 8 s deadline: the put timed out, and
    // so did the read that would have told whether it landed.
    assert_eq!(started.elapsed(), config.store_timeout * 2);
    // The send went out with the put (the worker takes it for an orphan after a receive lease).
    assert_eq!(queue.sent().len(), 1);
}

/// A secret source whose secrets rotate once a refresh is asked for.
struct Rotating {
    old: Arc<Secrets>,
    new: Arc<Secrets>,
    refreshed: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl SecretSource for Rotating {
    fn current(&self) -> Arc<Secrets> {
        if self.refreshed.load(Ordering::SeqCst) {
            self.new.clone()
        } else {
            self.old.clone()
        }
    }
    async fn refresh(&self) -> Option<Arc<Secrets>> {
        self.refreshed.store(true, Ordering::SeqCst);
        Some(self.new.clone())
    }
}

#[tokio::test]
async fn a_signature_under_a_rotated_secret_triggers_one_refresh() {
    let source = Arc::new(Rotating {
        old: Arc::new(Secrets::parse("old", None).unwrap()),
        new: Arc::new(Secrets::parse(SECRET, None).unwrap()),
        refreshed: Default::default(),
    });
    let r = rig();
    let receiver = Receiver::new(
        r.config.clone(),
        source.clone(),
        r.ledger.clone(),
        r.queue.clone(),
        Arc::new(|| T0),
    );
    let body = event("evt_1", "run.completed", "org_a");
    let reply = receiver
        .receive(Delivery {
            method: &Method::POST,
            headers: &r.signed(&body),
            body: Body::Raw(&body),
        })
        .await;
    assert_eq!(reply.verdict, Verdict::Accepted);
    assert!(source.refreshed.load(Ordering::SeqCst));
}

#[tokio::test]
async fn concurrent_deliveries_of_one_id_accept_once() {
    let r = Arc::new(rig());
    let body = event("evt_many", "run.completed", "org_a");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let r = r.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move { r.send(&body).await.verdict }));
    }
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Verdict::Accepted => accepted += 1,
            Verdict::Duplicate | Verdict::InProgress => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(accepted, 1);
    // The first sent beside its put; the repeats of an id this process began put first, so
    // the storm leaves one message, and the worker processes the event once.
    let sent = r.queue.sent();
    assert_eq!(sent.len(), 1);
    let processor = crate::process::Processor::new(
        &Config::default(),
        r.ledger.clone(),
        Arc::new(crate::downstream::LogDownstream),
        Arc::new(|| T0),
    );
    let mut processed = 0;
    for (_, message) in sent {
        match processor.process_sent(&message, Some(T0)).await {
            crate::process::Handled::Processed => processed += 1,
            crate::process::Handled::AlreadyProcessed => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(processed, 1);
}

/// On the embedded store the send waits for the put (both are local writes): a duplicate is
/// answered from a read connection and writes nothing, not even a message.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn on_the_embedded_store_a_duplicate_writes_nothing() {
    use crate::queue::Inbox;
    let dir = tempfile::tempdir().unwrap();
    let db = crate::sqlite::Db::open(dir.path()).unwrap();
    let config = Arc::new(Config::default());
    let clock: crate::clock::Clock = Arc::new(|| T0);
    let queue = Arc::new(crate::queue::sqlite::SqliteQueue::new(
        db.clone(),
        config.processing_lease,
        config.max_receive_count,
        config.backoff(),
        clock.clone(),
    ));
    let mut r = rig();
    r.receiver = Receiver::new(
        config,
        Arc::new(StaticSecrets::new(Secrets::parse(SECRET, None).unwrap())),
        Arc::new(crate::ledger::sqlite::SqliteLedger::new(db.clone())),
        queue.clone(),
        clock,
    );
    let body = event("evt_local", "run.completed", "org_a");
    assert_eq!(r.send(&body).await.verdict, Verdict::Accepted);
    let commits = db.commits();
    for _ in 0..3 {
        assert_eq!(r.send(&body).await.verdict, Verdict::Duplicate);
    }
    assert_eq!(db.commits(), commits, "a duplicate wrote");
    let mut other = body.clone();
    other.extend_from_slice(b" ");
    assert_eq!(r.send(&other).await.verdict, Verdict::Conflict);
    assert_eq!(db.commits(), commits, "a conflict wrote");
    assert_eq!(queue.receive(10).await.unwrap().len(), 1);
}

#[test]
fn seen_ids_last_a_receive_lease_and_stay_bounded() {
    let seen = Seen {
        ids: std::sync::Mutex::new(HashMap::new()),
    };
    assert!(!seen.check_and_mark("evt_a", T0, 30_000));
    assert!(seen.check_and_mark("evt_a", T0 + 29_999, 30_000));
    // Marked again at T0 + 29,999: a lease after that, it is forgotten.
    assert!(!seen.check_and_mark("evt_a", T0 + 60_000, 30_000));
    for n in 0..(SEEN_MAX * 3) {
        seen.check_and_mark(&format!("evt_{n}"), T0 + n as i64, 30_000);
    }
    let len = seen.ids.lock().unwrap().len();
    assert!(len <= SEEN_MAX, "{len}");
    // The newest are kept.
    assert!(seen.check_and_mark(&format!("evt_{}", SEEN_MAX * 3 - 1), T0 + 20_000, 30_000));
}
