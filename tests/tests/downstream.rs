//! The worker's downstream against local HTTP servers (a fake Zof API and notify endpoint) and
//! EventBridge in the emulator, through the real process pipeline.

use e2e::fake::{answer, Fake};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use zofhook_core::config::Config;
use zofhook_core::downstream::Sinks;
use zofhook_core::ledger::memory::MemoryLedger;
use zofhook_core::ledger::{Ledger, Status};
use zofhook_core::process::{Handled, Processor};

fn config(pairs: &[(&str, String)]) -> Config {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned()).unwrap()
}

fn message(id: &str) -> Vec<u8> {
    json!({"id": id, "type": "run.completed", "created": "2026-05-20T12:00:00Z",
           "data": {"object": {"id": "res_1", "organization_id": "org_a", "run_id": "run_1"}}})
    .to_string()
    .into_bytes()
}

fn run(state: &str) -> Value {
    json!({"id": "run_1", "state": state, "suite": "smoke", "url": "https://zof.example/runs/run_1", "extra": {"kept": true}})
}

struct Rig {
    processor: Processor,
    ledger: Arc<MemoryLedger>,
}

fn rig(config: &Config, token: Option<&str>, bus: Option<aws_sdk_eventbridge::Client>) -> Rig {
    let ledger = Arc::new(MemoryLedger::new());
    let sinks = Sinks::from_config(config, token.map(str::to_string), bus).unwrap();
    Rig {
        processor: Processor::new(
            config,
            ledger.clone(),
            Arc::new(sinks),
            zofhook_core::system_clock(),
        ),
        ledger,
    }
}

const RUN_PATH: &str = "/v1/runs/run_1";

#[tokio::test]
async fn reconciliation_records_each_run_state() {
    for state in ["passed", "failed", "canceled"] {
        let fake = Fake::default();
        fake.script(RUN_PATH, vec![], answer(200, run(state)));
        let base = fake.start().await;
        let c = config(&[("ZOFHOOK_ZOF_API_BASE_URL", base)]);
        let r = rig(&c, Some("tok_secret"), None);
        assert_eq!(
            r.processor.process(&message("evt_state")).await,
            Handled::Processed
        );
        let record = r.ledger.get("evt_state").await.unwrap().unwrap();
        let outcome = record.outcome.unwrap();
        assert_eq!(outcome["status"], state);
        assert_eq!(outcome["run"], run(state), "extra fields are kept");
        let seen = fake.seen(RUN_PATH);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].method, "GET");
        assert_eq!(seen[0].headers["authorization"], "Bearer tok_secret");
    }
}

#[tokio::test]
async fn without_a_zof_api_the_status_is_unknown() {
    let fake = Fake::default();
    fake.script("/notify", vec![], answer(204, Value::Null));
    let base = fake.start().await;
    let c = config(&[("ZOFHOOK_NOTIFY_URL", format!("{base}/notify"))]);
    let r = rig(&c, None, None);
    assert_eq!(
        r.processor.process(&message("evt_unknown")).await,
        Handled::Processed
    );
    let seen = fake.seen("/notify");
    assert_eq!(seen[0].body["status"], "unknown");
    assert_eq!(seen[0].body["run"], Value::Null);
    // A base URL with no token is refused when the worker is built.
    let c = config(&[("ZOFHOOK_ZOF_API_BASE_URL", base)]);
    let err = Sinks::from_config(&c, None, None).unwrap_err();
    assert!(err.message.contains("no Zof API token"), "{err}");
}

#[tokio::test]
async fn server_errors_then_success_are_retried_within_the_attempt() {
    let fake = Fake::default();
    fake.script(
        RUN_PATH,
        vec![answer(500, json!({})), answer(502, json!({}))],
        answer(200, run("passed")),
    );
    let base = fake.start().await;
    let c = config(&[("ZOFHOOK_ZOF_API_BASE_URL", base)]);
    let r = rig(&c, Some("t"), None);
    assert_eq!(
        r.processor.process(&message("evt_5xx")).await,
        Handled::Processed
    );
    assert_eq!(fake.seen(RUN_PATH).len(), 3);
    assert_eq!(
        r.ledger
            .get("evt_5xx")
            .await
            .unwrap()
            .unwrap()
            .outcome
            .unwrap()["status"],
        "passed"
    );
}

#[tokio::test]
async fn too_many_requests_waits_as_retry_after_says() {
    let fake = Fake::default();
    let mut limited = answer(429, json!({"error": "slow down"}));
    limited.headers.push(("retry-after", "1".into()));
    fake.script(RUN_PATH, vec![limited], answer(200, run("failed")));
    let base = fake.start().await;
    let c = config(&[("ZOFHOOK_ZOF_API_BASE_URL", base)]);
    let r = rig(&c, Some("t"), None);
    assert_eq!(
        r.processor.process(&message("evt_429")).await,
        Handled::Processed
    );
    let seen = fake.seen(RUN_PATH);
    assert_eq!(seen.len(), 2);
    // A lower bound only: the retry did not come before Retry-After allowed it.
    assert!(seen[1].at.duration_since(seen[0].at) >= Duration::from_millis(990));
}

#[tokio::test]
async fn a_timeout_is_retried() {
    let fake = Fake::default();
    let mut slow = answer(200, run("passed"));
    slow.delay = Duration::from_secs(3);
    fake.script(RUN_PATH, vec![slow], answer(200, run("canceled")));
    let base = fake.start().await;
    let c = config(&[
        ("ZOFHOOK_ZOF_API_BASE_URL", base),
        ("ZOFHOOK_DOWNSTREAM_TIMEOUT_MS", "300".into()),
    ]);
    let r = rig(&c, Some("t"), None);
    assert_eq!(
        r.processor.process(&message("evt_slow")).await,
        Handled::Processed
    );
    assert_eq!(fake.seen(RUN_PATH).len(), 2);
    assert_eq!(
        r.ledger
            .get("evt_slow")
            .await
            .unwrap()
            .unwrap()
            .outcome
            .unwrap()["status"],
        "canceled"
    );
}

#[tokio::test]
async fn unauthorized_is_permanent_and_not_retried() {
    let fake = Fake::default();
    fake.script(RUN_PATH, vec![], answer(401, json!({"error": "bad token"})));
    let base = fake.start().await;
    let c = config(&[("ZOFHOOK_ZOF_API_BASE_URL", base)]);
    let r = rig(&c, Some("t"), None);
    let handled = r.processor.process(&message("evt_401")).await;
    assert!(
        matches!(&handled, Handled::Retry(why) if why.contains("401") && why.contains("permanent")),
        "{handled:?}"
    );
    assert_eq!(
        fake.seen(RUN_PATH).len(),
        1,
        "a permanent failure is not retried in-process"
    );
    let record = r.ledger.get("evt_401").await.unwrap().unwrap();
    assert_eq!((record.status, record.attempts), (Status::Failed, 1));
    // Also 404 and 403.
    for status in [403, 404] {
        fake.script(RUN_PATH, vec![], answer(status, json!({})));
        let before = fake.seen(RUN_PATH).len();
        let id = format!("evt_{status}");
        assert!(!r.processor.process(&message(&id)).await.acknowledged());
        assert_eq!(fake.seen(RUN_PATH).len(), before + 1);
    }
}

#[tokio::test]
async fn the_json_notification_is_designs_body_with_the_idempotency_key() {
    let fake = Fake::default();
    fake.script(RUN_PATH, vec![], answer(200, run("passed")));
    fake.script("/notify", vec![], answer(200, json!({"ok": true})));
    let base = fake.start().await;
    let c = config(&[
        ("ZOFHOOK_ZOF_API_BASE_URL", base.clone()),
        ("ZOFHOOK_NOTIFY_URL", format!("{base}/notify")),
    ]);
    let r = rig(&c, Some("t"), None);
    assert_eq!(
        r.processor.process(&message("evt_json")).await,
        Handled::Processed
    );
    let seen = fake.seen("/notify");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].headers["idempotency-key"], "evt_json");
    assert_eq!(
        seen[0].body,
        json!({"event_id": "evt_json", "type": "run.completed", "created": "2026-05-20T12:00:00Z",
               "organization_id": "org_a", "run_id": "run_1", "status": "passed", "run": run("passed")})
    );
    let outcome = r
        .ledger
        .get("evt_json")
        .await
        .unwrap()
        .unwrap()
        .outcome
        .unwrap();
    assert_eq!(outcome["sinks"], json!({"notify": "ok"}));
}

#[tokio::test]
async fn the_slack_notification_names_run_organization_state_and_link() {
    let fake = Fake::default();
    fake.script(RUN_PATH, vec![], answer(200, run("failed")));
    fake.script("/slack", vec![], answer(200, json!("ok")));
    let base = fake.start().await;
    let c = config(&[
        ("ZOFHOOK_ZOF_API_BASE_URL", base.clone()),
        ("ZOFHOOK_NOTIFY_URL", format!("{base}/slack")),
        ("ZOFHOOK_NOTIFY_FORMAT", "slack".into()),
    ]);
    let r = rig(&c, Some("t"), None);
    assert_eq!(
        r.processor.process(&message("evt_slack")).await,
        Handled::Processed
    );
    let seen = fake.seen("/slack");
    let body = &seen[0].body;
    assert_eq!(body.as_object().unwrap().len(), 1, "only text: {body}");
    let text = body["text"].as_str().unwrap();
    for part in [
        "run_1",
        "org_a",
        "*failed*",
        "<https://zof.example/runs/run_1|open the run>",
        "evt_slack",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
    assert_eq!(seen[0].headers["idempotency-key"], "evt_slack");
}

#[tokio::test]
async fn a_failing_notify_url_is_a_failed_attempt() {
    let fake = Fake::default();
    fake.script("/notify", vec![], answer(500, json!({})));
    let base = fake.start().await;
    let c = config(&[
        ("ZOFHOOK_NOTIFY_URL", format!("{base}/notify")),
        ("ZOFHOOK_DOWNSTREAM_MAX_ATTEMPTS", "2".into()),
    ]);
    let r = rig(&c, None, None);
    assert!(!r
        .processor
        .process(&message("evt_n500"))
        .await
        .acknowledged());
    assert_eq!(fake.seen("/notify").len(), 2);
    let record = r.ledger.get("evt_n500").await.unwrap().unwrap();
    assert_eq!(record.status, Status::Failed);
    assert!(record.error.unwrap().contains("notify: HTTP 500"));
}

async fn bus_with_queue(sdk: &aws_config::SdkConfig, bus: &str) -> (aws_sdk_sqs::Client, String) {
    let eb = aws_sdk_eventbridge::Client::new(sdk);
    eb.create_event_bus().name(bus).send().await.unwrap();
    let (sqs, url) = e2e::create_queue(sdk).await;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    eb.put_rule()
        .name("zof-to-queue")
        .event_bus_name(bus)
        .event_pattern(json!({"source": ["zof.webhooks"]}).to_string())
        .send()
        .await
        .unwrap();
    eb.put_targets()
        .rule("zof-to-queue")
        .event_bus_name(bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    (sqs, url)
}

#[tokio::test]
async fn an_eventbridge_rule_with_an_sqs_target_receives_the_entry() {
    let sdk = e2e::sdk().await;
    let bus = e2e::unique("zof-bus");
    let (sqs, url) = bus_with_queue(&sdk, &bus).await;
    let c = config(&[("ZOFHOOK_EVENT_BUS_NAME", bus)]);
    let r = rig(&c, None, Some(aws_sdk_eventbridge::Client::new(&sdk)));
    assert_eq!(
        r.processor.process(&message("evt_bus")).await,
        Handled::Processed
    );
    let messages = e2e::drain(&sqs, &url).await;
    assert_eq!(messages.len(), 1);
    let entry: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(entry["source"], "zof.webhooks");
    assert_eq!(entry["detail-type"], "run.completed");
    assert_eq!(entry["detail"]["event_id"], "evt_bus");
    assert_eq!(entry["detail"]["status"], "unknown");
    let outcome = r
        .ledger
        .get("evt_bus")
        .await
        .unwrap()
        .unwrap()
        .outcome
        .unwrap();
    assert_eq!(outcome["sinks"], json!({"eventbridge": "ok"}));
}

#[tokio::test]
async fn a_partly_failed_attempt_does_not_repeat_the_sink_that_succeeded() {
    let sdk = e2e::sdk().await;
    let fake = Fake::default();
    fake.script(RUN_PATH, vec![], answer(200, run("passed")));
    fake.script("/notify", vec![], answer(200, json!({})));
    let base = fake.start().await;
    // The bus does not exist yet: EventBridge fails, the notification succeeds.
    let bus = e2e::unique("late-bus");
    let c = config(&[
        ("ZOFHOOK_ZOF_API_BASE_URL", base.clone()),
        ("ZOFHOOK_NOTIFY_URL", format!("{base}/notify")),
        ("ZOFHOOK_EVENT_BUS_NAME", bus.clone()),
    ]);
    let r = rig(&c, Some("t"), Some(aws_sdk_eventbridge::Client::new(&sdk)));
    let handled = r.processor.process(&message("evt_partial")).await;
    assert!(
        matches!(&handled, Handled::Retry(why) if why.contains("eventbridge")),
        "{handled:?}"
    );
    let failed = r.ledger.get("evt_partial").await.unwrap().unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(
        failed.outcome.as_ref().unwrap()["sinks"],
        json!({"notify": "ok"})
    );
    assert_eq!(fake.seen("/notify").len(), 1);

    // The bus appears; the queue's retry delivers to EventBridge only.
    let (sqs, url) = bus_with_queue(&sdk, &bus).await;
    assert_eq!(
        r.processor.process(&message("evt_partial")).await,
        Handled::Processed
    );
    assert_eq!(
        fake.seen("/notify").len(),
        1,
        "the notification is not sent twice"
    );
    assert_eq!(
        fake.seen(RUN_PATH).len(),
        1,
        "the run fetched by the first attempt is reused"
    );
    assert_eq!(e2e::drain(&sqs, &url).await.len(), 1);
    let done = r.ledger.get("evt_partial").await.unwrap().unwrap();
    assert_eq!(done.status, Status::Processed);
    assert_eq!(
        done.outcome.unwrap()["sinks"],
        json!({"notify": "ok", "eventbridge": "ok"})
    );
}

/// POSTs `body` to `serve`, signed with the secret it generated in `dir`: the status.
async fn post_signed(serve: &e2e::Serve, dir: &std::path::Path, body: Vec<u8>) -> u16 {
    let secret = std::fs::read_to_string(dir.join("secret")).unwrap();
    let (name, value) = e2e::sign(secret.trim(), &body);
    reqwest::Client::new()
        .post(&serve.url)
        .header(name, value)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn zofhook_serve_reconciles_and_notifies() {
    let fake = Fake::default();
    fake.script(
        RUN_PATH,
        vec![answer(503, json!({}))],
        answer(200, run("passed")),
    );
    fake.script("/notify", vec![], answer(200, json!({})));
    let base = fake.start().await;
    let dir = e2e::data_dir();
    let notify = format!("{base}/notify");
    let serve = e2e::Serve::start(
        &[
            "--data-dir",
            dir.to_str().unwrap(),
            "--zof-api-token",
            "tok_local",
        ],
        &["--zof-api-base-url", &base, "--notify-url", &notify],
        &[],
    );
    assert_eq!(
        post_signed(&serve, &dir, message("evt_serve_ds")).await,
        200
    );
    let started = std::time::Instant::now();
    while fake.seen("/notify").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no notification: {}",
            serve.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(fake.seen("/notify")[0].body["status"], "passed");
    assert_eq!(
        fake.seen(RUN_PATH)[0].headers["authorization"],
        "Bearer tok_local"
    );
    let d = dir.to_str().unwrap();
    let outcome = loop {
        let (_, out, _) = e2e::zofhook(
            &["--data-dir", d, "events", "show", "evt_serve_ds", "--json"],
            &[],
        );
        let record: Value = serde_json::from_str(&out).unwrap();
        if record["status"] == "processed" {
            break record["outcome"].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(15));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(outcome["status"], "passed");
    assert_eq!(outcome["sinks"], json!({"notify": "ok"}));
    assert!(
        !serve.stderr().contains("tok_local"),
        "the token is never logged"
    );
}

/// The EventBridge sink's calls have the downstream timeouts, not the ledger's: its client is
/// built as the worker builds it, with `aws::timeouts` (a 2 s store timeout, 667 ms a try), and
/// an EventBridge that answers after 3 s is still published to once, with DownstreamTimeoutMs
/// 10000. With the ledger's timeouts the attempt fails and is retried (and repeated) instead.
#[tokio::test]
async fn eventbridge_calls_have_the_downstream_timeout_not_the_ledgers() {
    let fake = Fake::default();
    let mut slow = answer(
        200,
        json!({"Entries": [{"EventId": "e1"}], "FailedEntryCount": 0}),
    );
    slow.delay = Duration::from_secs(3);
    slow.headers = vec![("content-type", "application/x-amz-json-1.1".into())];
    fake.script("/", vec![], slow);
    let base = fake.start().await;
    let c = config(&[
        ("ZOFHOOK_EVENT_BUS_NAME", "zof-bus".into()),
        ("ZOFHOOK_DOWNSTREAM_TIMEOUT_MS", "10000".into()),
    ]);
    assert_eq!(c.store_timeout, Duration::from_secs(2));
    let client = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&e2e::sdk().await)
            .endpoint_url(&base)
            .timeout_config(zofhook_core::aws::timeouts(&c))
            .build(),
    );
    let r = rig(&c, None, Some(client));
    assert_eq!(
        r.processor.process(&message("evt_slow_bus")).await,
        Handled::Processed
    );
    let calls = fake.seen("/");
    assert_eq!(calls.len(), 1, "PutEvents calls: {}", calls.len());
    assert_eq!(calls[0].body["Entries"][0]["EventBusName"], "zof-bus");
    let detail: Value =
        serde_json::from_str(calls[0].body["Entries"][0]["Detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["event_id"], "evt_slow_bus");
}

/// What only AWS enforces: a DynamoDB item is at most 400 KB, and the emulator refuses larger
/// ones too. A 120 KB body whose run answer from Zof is 330 KB: the record keeps the body and a
/// bounded outcome (the run's status, its small fields, the sinks), so the outcome is recorded,
/// the event ends `processed` and the notify URL hears of it exactly once, with the whole run.
/// A default `zofhook serve --aws` on the emulator's table and queue.
#[tokio::test]
async fn a_large_body_with_a_larger_run_answer_is_processed_and_notified_once() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let fake = Fake::default();
    let mut big_run = run("passed");
    big_run["log"] = json!("r".repeat(330 * 1024));
    fake.script(RUN_PATH, vec![], answer(200, big_run));
    fake.script("/notify", vec![], answer(200, json!({})));
    let base = fake.start().await;
    let sdk = e2e::sdk().await;
    let (dynamo, table) = e2e::create_table(&sdk).await;
    let (sqs, queue_url) = e2e::create_queue(&sdk).await;
    let dir = e2e::data_dir();
    let notify = format!("{base}/notify");
    let mut env = e2e::aws_env();
    env.push(("ZOFHOOK_ZOF_API_TOKEN", "tok_local".into()));
    let serve = e2e::Serve::start_aws(
        &dir,
        &table,
        &queue_url,
        &["--zof-api-base-url", &base, "--notify-url", &notify],
        &env,
    );
    let body = json!({"id": "evt_big", "type": "run.completed", "created": "2026-05-20T12:00:00Z",
        "data": {"object": {"id": "res_1", "organization_id": "org_a", "run_id": "run_1",
                            "notes": "b".repeat(120 * 1024)}}})
    .to_string()
    .into_bytes();
    assert_eq!(post_signed(&serve, &dir, body).await, 200);
    let started = std::time::Instant::now();
    let item = loop {
        let item = dynamo
            .get_item()
            .table_name(&table)
            .key("id", AttributeValue::S("evt_big".into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item()
            .cloned()
            .unwrap_or_default();
        let in_flight = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes()
            .cloned()
            .unwrap_or_default();
        let left = |n| in_flight.get(&n).cloned().unwrap_or_default();
        let drained = left(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            == "0"
            && left(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                == "0";
        if item.get("status") == Some(&AttributeValue::S("processed".into())) && drained {
            break item;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not processed and drained: {:?} {:?}\n{}",
            item.get("status"),
            item.get("error"),
            serve.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let notified = fake.seen("/notify");
    assert_eq!(notified.len(), 1, "{}", serve.stderr());
    assert_eq!(
        notified[0].body["run"]["log"].as_str().map(str::len),
        Some(330 * 1024),
        "the sink got the whole run"
    );
    let Some(AttributeValue::S(outcome)) = item.get("outcome") else {
        panic!("no outcome: {item:?}")
    };
    assert!(outcome.len() <= zofhook_core::downstream::OUTCOME_MAX_BYTES);
    let outcome: Value = serde_json::from_str(outcome).unwrap();
    assert_eq!(outcome["status"], "passed");
    assert_eq!(outcome["sinks"], json!({"notify": "ok"}));
    assert_eq!(outcome["run_truncated"], true);
    assert_eq!(outcome["run"]["id"], "run_1");
    assert_eq!(outcome["run"]["url"], "https://zof.example/runs/run_1");
    assert!(outcome["run"]["log"].as_str().unwrap().len() < 300);
    let Some(AttributeValue::S(stored_body)) = item.get("body") else {
        panic!("no body")
    };
    assert!(stored_body.len() > 120 * 1024, "the body is kept whole");
    assert!(!serve.stderr().contains("refused"), "{}", serve.stderr());
}
