//! As users run it: default settings only (no test-sized leases, timeouts or backoffs), idle
//! periods longer than the long-poll wait, restarts after `kill -9`, and one owner per data dir.

use e2e::fake::{answer, Fake};
use e2e::{data_dir, event, signature, wait_processed, zofhook, Serve};
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Posts `body` until it gets a 2xx (Zof retries a 503); returns the verdict word.
async fn deliver(client: &reqwest::Client, url: &str, secret: &str, body: &[u8]) -> String {
    let started = Instant::now();
    loop {
        let response = client
            .post(url)
            .header("zof-signature", signature(secret, body))
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let reply: serde_json::Value = response.json().await.unwrap();
        if status == 200 {
            return reply["status"].as_str().unwrap().to_string();
        }
        assert_eq!(status, 503, "{reply}");
        assert!(started.elapsed() < Duration::from_secs(60), "{reply}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Delivers `n` new events one after the other (`{prefix}_{i}`), each `accepted`; their ids.
async fn accept_each(serve: &Serve, dir: &std::path::Path, prefix: &str, n: usize) -> Vec<String> {
    let secret = std::fs::read_to_string(dir.join("secret")).unwrap();
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("{prefix}_{i}");
        let body = event(&id, "org_a", "run_1");
        assert_eq!(
            deliver(&client, &serve.url, secret.trim(), &body).await,
            "accepted"
        );
        ids.push(id);
    }
    ids
}

#[tokio::test]
async fn serve_aws_on_defaults_after_idle_processes_50_sequential_deliveries_and_drains() {
    let sdk = e2e::sdk().await;
    let (dynamo, table) = e2e::create_table(&sdk).await;
    let (sqs, queue_url) = e2e::create_queue(&sdk).await;
    let dir = data_dir();
    let serve = Serve::start_aws(&dir, &table, &queue_url, &[], &e2e::aws_env());
    // Idle for longer than several long polls (2 s each): none may time out on our side.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let ids = accept_each(&serve, &dir, "evt_idle", 50).await;
    let started = Instant::now();
    loop {
        let mut processed = 0;
        for id in &ids {
            let item = dynamo
                .get_item()
                .table_name(&table)
                .key("id", aws_sdk_dynamodb::types::AttributeValue::S(id.clone()))
                .send()
                .await
                .unwrap();
            let status = item.item().and_then(|i| i.get("status")).cloned();
            if status
                == Some(aws_sdk_dynamodb::types::AttributeValue::S(
                    "processed".into(),
                ))
            {
                processed += 1;
            }
        }
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let attributes = attributes.attributes().cloned().unwrap_or_default();
        let count = |name| attributes.get(&name).cloned().unwrap_or_default();
        let visible = count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages);
        let in_flight =
            count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
        if processed == ids.len() && visible == "0" && in_flight == "0" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{processed} of 50 processed, {visible} visible, {in_flight} in flight\n{}",
            serve.stderr()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log = serve.stderr();
    assert!(
        !log.contains("WARN") && !log.contains("ERROR"),
        "an idle serve --aws logged at warn level:\n{log}"
    );
}

// The fake answers on this runtime while the test waits in blocking calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_100_accepted_then_a_restart_processes_all_at_once_on_defaults() {
    let fake = Fake::default();
    // The first notifications hang: both workers are mid-processing (holding 360 s claims) when
    // the process is killed. Later ones answer at once.
    let mut hang = answer(200, json!({}));
    hang.delay = Duration::from_secs(120);
    fake.script("/notify", vec![hang.clone(), hang], answer(200, json!({})));
    let base = fake.start().await;
    let notify = format!("{base}/notify");
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let mut serve = Serve::start(&["--data-dir", d], &["--notify-url", &notify], &[]);
    let ids: HashSet<String> = accept_each(&serve, &dir, "evt_killed", 100)
        .await
        .into_iter()
        .collect();
    let started = Instant::now();
    while fake.seen("/notify").len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    serve.signal("KILL");
    let claimed: Vec<_> = e2e::events_json(&dir)
        .into_iter()
        .filter(|e| e["status"] == "processing")
        .collect();
    assert!(!claimed.is_empty(), "no claim was held when killed");
    let restarted = Serve::start(&["--data-dir", d], &["--notify-url", &notify], &[]);
    assert!(
        restarted.banner.iter().any(|l| l.contains("resuming")),
        "{:?}",
        restarted.banner
    );
    wait_processed(&dir, &ids, Duration::from_secs(30));
}

#[tokio::test]
async fn a_second_serve_on_one_data_dir_exits_2_naming_the_owner_and_the_first_keeps_working() {
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let first = Serve::start(&["--data-dir", d], &[], &[]);
    let (code, out, err) = zofhook(&["--data-dir", d, "serve", "--listen", "127.0.0.1:0"], &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("in use by zofhook serve (pid") && err.contains(d),
        "{err}"
    );
    assert!(!out.contains("listening"), "{out}");
    // Read and admin commands work beside it, and the first still serves.
    let (code, out, err) = zofhook(&["--data-dir", d, "send", "--id", "evt_owner"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("accepted"), "{out}");
    let (code, _, err) = zofhook(&["--data-dir", d, "events", "list"], &[]);
    assert_eq!(code, 0, "{err}");
    wait_processed(
        &dir,
        &HashSet::from(["evt_owner".to_string()]),
        Duration::from_secs(30),
    );
    drop(first);
}

// The fake answers on this runtime while the test waits in blocking calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_event_comes_back_after_the_default_backoff_then_is_processed() {
    let fake = Fake::default();
    // 400 is permanent for the downstream: no in-process retry, so the failure is one attempt.
    fake.script(
        "/notify",
        vec![answer(400, json!({"error": "not yet"}))],
        answer(200, json!({})),
    );
    let base = fake.start().await;
    let notify = format!("{base}/notify");
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let _serve = Serve::start(&["--data-dir", d], &["--notify-url", &notify], &[]);
    e2e::send_and_wait_processed(&dir, "evt_backoff", Duration::from_secs(90));
    let times: Vec<Instant> = fake.seen("/notify").iter().map(|s| s.at).collect();
    assert_eq!(times.len(), 2, "the failure, then the success");
    // RetryBaseSeconds (30 s) less up to a fifth of jitter: never sooner than 24 s (a bound no
    // load can break), and not the 360 s lease either.
    let gap = times[1] - times[0];
    assert!(gap >= Duration::from_secs(24), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(90), "retried after {gap:?}");
    let (_, out, _) = zofhook(
        &["--data-dir", d, "events", "show", "evt_backoff", "--json"],
        &[],
    );
    let record: serde_json::Value = serde_json::from_str(&out).unwrap();
    // `attempts` counts failed attempts.
    assert_eq!(record["attempts"], 1);
    assert_eq!(record["status"], "processed");
}

#[test]
fn sending_an_id_again_sends_the_same_event() {
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let _serve = Serve::start(&["--data-dir", d], &[], &[]);
    let (_, first, _) = zofhook(&["--data-dir", d, "send", "--id", "evt_demo_1"], &[]);
    let (_, again, _) = zofhook(&["--data-dir", d, "send", "--id", "evt_demo_1"], &[]);
    assert_eq!(
        first.trim(),
        r#"200 {"id":"evt_demo_1","status":"accepted"}"#
    );
    assert_eq!(
        again.trim(),
        r#"200 {"id":"evt_demo_1","status":"duplicate"}"#
    );
}
