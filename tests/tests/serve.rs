//! `zofhook serve` on the embedded store, end to end: the built binary over real HTTP, a temp
//! data dir, default settings unless a test is about a setting. The status table, duplicates
//! (30 at once, and a 2,000-delivery storm), kill -9 and SIGTERM mid-load, one owner per data
//! dir, retries, the dead letters and redrive, a full or read-only disk, and logs without
//! secrets.

use e2e::fake::{answer, Fake};
use e2e::load::*;
use e2e::{data_dir, event, events_json, signature, wait_processed, zofhook, Serve};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn the_status_table_over_real_http() {
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let serve = Serve::start(
        &["--data-dir", d],
        &["--organization-id", "org_a", "--max-body-bytes", "2048"],
        &[],
    );
    let secret = secret_in(&dir);
    assert!(secret.starts_with("whsec_"));
    assert!(
        serve.banner.iter().any(|l| l.contains(&secret)),
        "the new secret is printed: {:?}",
        serve.banner
    );
    let client = reqwest::Client::new();
    let url = serve.url.as_str();
    let body = event("evt_http_1", "org_a", "run_1");

    assert_eq!(
        post(&client, url, &secret, &body).await,
        (200, json!({"status": "accepted", "id": "evt_http_1"}))
    );
    assert_eq!(
        post(&client, url, &secret, &body).await,
        (200, json!({"status": "duplicate", "id": "evt_http_1"}))
    );
    let started =
        json!({"id": "evt_http_2", "type": "run.started", "created": "2026-05-20T12:00:00Z",
                         "data": {"object": {"organization_id": "org_a"}}})
        .to_string();
    assert_eq!(
        post(&client, url, &secret, started.as_bytes()).await,
        (200, json!({"status": "ignored", "id": "evt_http_2"}))
    );
    let other = event("evt_http_3", "org_b", "run_1");
    assert_eq!(
        post(&client, url, &secret, &other).await,
        (403, json!({"error": "wrong_organization"}))
    );
    let changed = event("evt_http_1", "org_a", "run_2");
    assert_eq!(
        post(&client, url, &secret, &changed).await,
        (409, json!({"error": "conflict", "id": "evt_http_1"}))
    );
    let (status, reply) = post(&client, url, &secret, b"{\"id\":").await;
    assert_eq!((status, &reply["error"]), (400, &json!("invalid_event")));
    assert_eq!(
        post(
            &client,
            url,
            "whsec_d3Jvbmcgc2VjcmV0",
            &event("evt_http_4", "org_a", "r")
        )
        .await,
        (401, json!({"error": "invalid_signature"}))
    );
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(3000));
    assert_eq!(
        post(&client, url, &secret, big.as_bytes()).await,
        (413, json!({"error": "payload_too_large"}))
    );

    let no_sig = client
        .post(url)
        .header("content-type", "application/json")
        .body(event("evt_http_5", "org_a", "r"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_sig.status().as_u16(), 401);
    let text = client
        .post(url)
        .header("content-type", "text/plain")
        .header("zof-signature", signature(&secret, &body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(text.status().as_u16(), 415);
    let get = client.get(url).send().await.unwrap();
    assert_eq!(get.status().as_u16(), 405);
    assert_eq!(get.headers()["content-type"], "application/json");
    assert_eq!(
        get.json::<Value>().await.unwrap(),
        json!({"error": "method_not_allowed"})
    );
    let health = client
        .get(url.replace("/webhook", "/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);

    // Only the accepted event was stored.
    wait_processed(
        &dir,
        &HashSet::from(["evt_http_1".to_string()]),
        Duration::from_secs(10),
    );
    let ids: Vec<Value> = events_json(&dir)
        .into_iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("evt_http_1")]);
}

#[tokio::test]
async fn thirty_concurrent_deliveries_of_one_id_accept_once() {
    let dir = data_dir();
    let serve = Serve::start(&["--data-dir", dir.to_str().unwrap()], &[], &[]);
    let secret = secret_in(&dir);
    let client = reqwest::Client::new();
    let body = event("evt_storm_cli", "org_a", "run_1");
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let (client, url, secret, body) = (
            client.clone(),
            serve.url.clone(),
            secret.clone(),
            body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            post(&client, &url, &secret, &body).await
        }));
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        let (status, reply) = t.await.unwrap();
        let word = reply["status"]
            .as_str()
            .or(reply["error"].as_str())
            .unwrap_or("?")
            .to_string();
        assert!(status == 200 || word == "in_progress", "{status} {reply}");
        *counts.entry(word).or_default() += 1;
    }
    assert_eq!(counts.get("accepted"), Some(&1), "{counts:?}");
    wait_processed(
        &dir,
        &HashSet::from(["evt_storm_cli".to_string()]),
        Duration::from_secs(10),
    );
}

/// `kill -9` of `serve` at default settings with deliveries in flight (100 answered, up to 50
/// more under way) and both workers holding claims (their notify calls hang): the restart
/// releases what the dead process held and processes every delivery that got a 2xx at once,
/// within 30 s, where the claims' lease is 360 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_load_with_claims_held_then_a_restart_processes_every_accepted_delivery_at_once()
{
    let fake = Fake::default();
    let mut hang = answer(200, json!({}));
    hang.delay = Duration::from_secs(120);
    fake.script("/notify", vec![hang.clone(), hang], answer(200, json!({})));
    let base = fake.start().await;
    let notify = format!("{base}/notify");
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let mut serve = Serve::start(&["--data-dir", d], &["--notify-url", &notify], &[]);
    let secret = secret_in(&dir);
    let landed = Arc::new(AtomicUsize::new(0));
    let firing = tokio::spawn({
        let (url, secret, landed) = (serve.url.clone(), secret.clone(), landed.clone());
        async move { fire_counting(&url, &secret, "evt_kill", 2000, landed).await }
    });
    let started = Instant::now();
    while landed.load(Ordering::SeqCst) < 100 || fake.seen("/notify").len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} answered, {} notify calls",
            landed.load(Ordering::SeqCst),
            fake.seen("/notify").len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    serve.signal("KILL");
    let accepted = firing.await.unwrap();
    eprintln!(
        "kill -9: {} of 2000 deliveries answered 2xx before the kill",
        accepted.len()
    );
    assert!(
        (100..2000).contains(&accepted.len()),
        "the kill landed mid-stream"
    );
    let claimed = events_json(&dir)
        .into_iter()
        .filter(|e| e["status"] == "processing")
        .count();
    assert!(claimed > 0, "no claim was held when killed");
    let restarted = Serve::start(&["--data-dir", d], &["--notify-url", &notify], &[]);
    assert!(
        restarted.banner.iter().any(|l| l.contains("resuming")),
        "{:?}",
        restarted.banner
    );
    wait_processed(&dir, &accepted, Duration::from_secs(30));
}

#[tokio::test]
async fn sigterm_mid_load_exits_0_and_every_accepted_delivery_is_processed() {
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let mut serve = Serve::start(&["--data-dir", d], &[], &[]);
    let secret = std::fs::read_to_string(dir.join("secret"))
        .unwrap()
        .trim()
        .to_string();
    let url = serve.url.clone();
    let landed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let firing = tokio::spawn({
        let (url, secret, landed) = (url.clone(), secret.clone(), landed.clone());
        async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let gate = Arc::new(tokio::sync::Semaphore::new(50));
            let mut tasks = Vec::new();
            for i in 0..600 {
                let (client, url, secret, landed) =
                    (client.clone(), url.clone(), secret.clone(), landed.clone());
                let permit = gate.clone().acquire_owned().await.unwrap();
                tasks.push(tokio::spawn(async move {
                    let _permit = permit;
                    let id = format!("evt_term_load_{i}");
                    let body = event(&id, "org_a", "run_1");
                    let sent = client
                        .post(&url)
                        .header("zof-signature", signature(&secret, &body))
                        .body(body)
                        .send()
                        .await;
                    let ok = matches!(sent, Ok(r) if r.status().is_success());
                    if ok {
                        landed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    ok.then_some(id)
                }));
            }
            let mut accepted = HashSet::new();
            for t in tasks {
                if let Some(id) = t.await.unwrap() {
                    accepted.insert(id);
                }
            }
            accepted
        }
    });
    // SIGTERM mid-stream: after 100 deliveries were answered, with up to 50 in flight.
    let started = Instant::now();
    while landed.load(std::sync::atomic::Ordering::SeqCst) < 100 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "deliveries are not landing"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = serve.child.id();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let accepted = firing.await.unwrap();
    let status = serve.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", serve.stderr());
    assert!(
        (100..600).contains(&accepted.len()),
        "SIGTERM stopped accepting mid-stream"
    );
    let _restarted = Serve::start(&["--data-dir", d], &[], &[]);
    wait_processed(std::path::Path::new(d), &accepted, Duration::from_secs(30));
    eprintln!(
        "SIGTERM mid-load: {} of 600 accepted, all processed",
        accepted.len()
    );
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

#[tokio::test]
async fn duplicates_under_load_accept_once_and_notify_once_on_the_embedded_store() {
    let _heavy = HEAVY.lock().await;
    let fake = Fake::default();
    fake.script("/notify", vec![], answer(200, json!({})));
    let base = fake.start().await;
    let dir = data_dir();
    let notify = format!("{base}/notify");
    let serve = Serve::start(
        &["--data-dir", dir.to_str().unwrap()],
        &["--notify-url", &notify, "--workers", "4"],
        &[],
    );
    let secret = std::fs::read_to_string(dir.join("secret")).unwrap();
    let stormed = storm(&serve.url, secret.trim(), "evt_load").await;
    let verdicts = &stormed.verdicts;
    assert_eq!(
        verdicts
            .values()
            .map(|c| c.values().sum::<usize>())
            .sum::<usize>(),
        2000
    );
    assert_exactly_one_accepted(&stormed);
    let ids: HashSet<String> = verdicts.keys().cloned().collect();
    let notified = notifications_once_settled(&fake, &ids, Duration::from_secs(120), || {
        std::future::ready(embedded_settled(&dir, &ids))
    })
    .await;
    assert_notified_once(&notified, &serve);
    eprintln!(
        "embedded: {} ids, 2000 deliveries, {} notifications",
        ids.len(),
        notified.values().sum::<usize>()
    );
}

#[tokio::test]
async fn dead_lettered_messages_are_redriven() {
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    // A message no worker can process, queued before serve starts.
    {
        let db = zofhook_core::sqlite::Db::open(&dir).unwrap();
        let queue = zofhook_core::queue::sqlite::SqliteQueue::new(
            db,
            Duration::from_secs(30),
            1,
            zofhook_core::config::Config::default().backoff(),
            zofhook_core::system_clock(),
        );
        zofhook_core::queue::Queue::send(&queue, "evt_bad", b"not an event")
            .await
            .unwrap();
    }
    let serve = Serve::start(
        &["--data-dir", d],
        &["--max-receive-count", "1", "--retry-base-seconds", "1"],
        &[],
    );
    let queue_state = || {
        let db = zofhook_core::sqlite::Db::open(&dir).unwrap();
        let queue = zofhook_core::queue::sqlite::SqliteQueue::new(
            db,
            Duration::from_secs(30),
            1,
            zofhook_core::config::Config::default().backoff(),
            zofhook_core::system_clock(),
        );
        async move { queue.depth().await.unwrap() }
    };
    let started = Instant::now();
    while queue_state().await != (0, 1) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "not dead-lettered: {:?}",
            queue_state().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(serve);
    let (code, out, err) = zofhook(&["--data-dir", d, "redrive"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        "moved 1 dead-lettered event(s) back to the queue"
    );
    assert_eq!(queue_state().await, (1, 0));
}

#[tokio::test]
async fn a_downstream_failing_until_dead_letter_is_redriven_and_completes() {
    let fake = Fake::default();
    // Down for the first two receives (MaxReceiveCount 2), up after that.
    fake.script(
        "/notify",
        vec![answer(500, json!({})), answer(500, json!({}))],
        answer(200, json!({})),
    );
    let base = fake.start().await;
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let notify = format!("{base}/notify");
    let flags = [
        "--notify-url",
        notify.as_str(),
        "--max-receive-count",
        "2",
        "--downstream-max-attempts",
        "1",
        // Retries within seconds, not the default 30 s.
        "--retry-base-seconds",
        "1",
    ];
    let serve = Serve::start(&["--data-dir", d], &flags, &[]);
    let (code, out, err) = zofhook(&["--data-dir", d, "send", "--id", "evt_dlq"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    // Wait until it is dead-lettered: failed twice, and no more deliveries.
    let started = Instant::now();
    let show = || {
        let (_, out, _) = zofhook(
            &["--data-dir", d, "events", "show", "evt_dlq", "--json"],
            &[],
        );
        serde_json::from_str::<Value>(&out).unwrap()
    };
    while show()["attempts"] != 2 {
        assert!(started.elapsed() < Duration::from_secs(20), "{}", show());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Dead-lettered, not retried for ever: once the message is in the dead-letter queue, with
    // nothing live left, no third call can come.
    while queued(&dir) != (0, 1) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "queue {:?}, {}",
            queued(&dir),
            show()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(serve);
    let record = show();
    assert_eq!(record["status"], "failed", "{record}");
    assert_eq!(fake.seen("/notify").len(), 2);
    let (code, out, _) = zofhook(&["--data-dir", d, "redrive"], &[]);
    assert_eq!(
        (code, out.trim()),
        (0, "moved 1 dead-lettered event(s) back to the queue")
    );
    let _serve = Serve::start(&["--data-dir", d], &flags, &[]);
    while show()["status"] != "processed" {
        assert!(started.elapsed() < Duration::from_secs(40), "{}", show());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(fake.seen("/notify").len(), 3);
    assert_eq!(show()["outcome"]["sinks"], json!({"notify": "ok"}));
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

// The fake answers on this runtime while the test waits in blocking calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_downstream_is_retried_at_doubling_backoff_intervals_then_processed() {
    let fake = Fake::default();
    // 400 is permanent for the downstream: no in-process retry, so each failure is one attempt.
    let fail = answer(400, json!({"error": "not yet"}));
    fake.script(
        "/notify",
        vec![fail.clone(), fail.clone(), fail],
        answer(200, json!({})),
    );
    let base = fake.start().await;
    let notify = format!("{base}/notify");
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    // RetryBaseSeconds 1 instead of 30, so that three doublings take 7 s, not 3.5 minutes: the
    // doubling is what this test is about; `serve::a_failed_event_comes_back_after_the_default_backoff_then_is_processed`
    // checks the default base.
    let _serve = Serve::start(
        &["--data-dir", d],
        &["--notify-url", &notify, "--retry-base-seconds", "1"],
        &[],
    );
    e2e::send_and_wait_processed(&dir, "evt_backoff", Duration::from_secs(30));
    let times: Vec<Instant> = fake.seen("/notify").iter().map(|s| s.at).collect();
    assert_eq!(times.len(), 4, "three failures, then the success");
    for (k, pair) in times.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        // 1 s, 2 s, 4 s, less up to a fifth (jitter); never the 360 s visibility timeout.
        let full = Duration::from_secs(1 << k);
        assert!(gap >= full * 4 / 5, "retry {k} after {gap:?}");
        assert!(
            gap < full + Duration::from_secs(10),
            "retry {k} after {gap:?}"
        );
    }
    let (_, out, _) = zofhook(
        &["--data-dir", d, "events", "show", "evt_backoff", "--json"],
        &[],
    );
    let record: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(record["attempts"], 3);
    assert_eq!(record["status"], "processed");
}

#[tokio::test]
async fn a_worker_killed_mid_processing_is_taken_over_after_its_lease() {
    let fake = Fake::default();
    // The first notification hangs (the worker is busy in it when it is killed); later ones answer.
    let mut hang = answer(200, json!({}));
    hang.delay = Duration::from_secs(30);
    fake.script("/notify", vec![hang], answer(200, json!({})));
    let base = fake.start().await;
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let notify = format!("{base}/notify");
    let flags = [
        "--notify-url",
        notify.as_str(),
        "--processing-lease-seconds",
        "2",
    ];
    let mut serve = Serve::start(&["--data-dir", d], &flags, &[]);
    let (code, _, err) = zofhook(&["--data-dir", d, "send", "--id", "evt_midway"], &[]);
    assert_eq!(code, 0, "{err}");
    let started = Instant::now();
    while fake.seen("/notify").is_empty() {
        assert!(started.elapsed() < Duration::from_secs(15));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    serve.signal("KILL");
    let (_, out, _) = zofhook(
        &["--data-dir", d, "events", "show", "evt_midway", "--json"],
        &[],
    );
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["status"],
        "processing"
    );
    let _restarted = Serve::start(&["--data-dir", d], &flags, &[]);
    loop {
        let (_, out, _) = zofhook(
            &["--data-dir", d, "events", "show", "evt_midway", "--json"],
            &[],
        );
        if serde_json::from_str::<Value>(&out).unwrap()["status"] == "processed" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{out}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen = fake.seen("/notify");
    assert_eq!(seen.len(), 2, "one call per attempt");
    assert!(
        seen.iter()
            .all(|s| s.headers["idempotency-key"] == "evt_midway"),
        "same key both times"
    );
}

#[tokio::test]
async fn no_log_line_of_a_full_run_holds_the_secret_or_the_api_token() {
    const WEBHOOK_SECRET: &str = "whsec_c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1sZWFr";
    const TOKEN: &str = "zof_token_that_must_never_leak";
    let fake = Fake::default();
    // Failures on every path first: the API refuses, then errs, the notify URL errs.
    fake.script(
        "/v1/runs/run_leak",
        vec![
            answer(401, json!({"error": "bad token"})),
            answer(500, json!({})),
        ],
        answer(200, json!({"id": "run_leak", "state": "passed"})),
    );
    fake.script(
        "/notify",
        vec![answer(500, json!({}))],
        answer(200, json!({})),
    );
    let base = fake.start().await;
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let notify = format!("{base}/notify");
    let debug = [("RUST_LOG", "debug".to_string())];
    let serve = Serve::start(
        &[
            "--data-dir",
            d,
            "--secret",
            WEBHOOK_SECRET,
            "--zof-api-token",
            TOKEN,
        ],
        &[
            "--zof-api-base-url",
            &base,
            "--notify-url",
            &notify,
            "--downstream-max-attempts",
            "1",
            "--retry-base-seconds",
            "1",
        ],
        &debug,
    );
    let mut outputs = serve.banner.join("\n");
    let body = event("evt_leak", "org_a", "run_leak");
    let client = reqwest::Client::new();
    // A forged delivery, a good one, a duplicate, and the CLI's own commands.
    for secret in ["whsec_d3Jvbmc=", WEBHOOK_SECRET, WEBHOOK_SECRET] {
        let response = client
            .post(&serve.url)
            .header("zof-signature", signature(secret, &body))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        outputs.push_str(&response.text().await.unwrap());
    }
    let started = Instant::now();
    loop {
        let (_, out, err) = zofhook(
            &["--data-dir", d, "events", "show", "evt_leak", "--json"],
            &debug,
        );
        outputs.push_str(&out);
        outputs.push_str(&err);
        if serde_json::from_str::<Value>(&out).unwrap()["status"] == "processed" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{out}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for args in [
        vec![
            "--data-dir",
            d,
            "--secret",
            WEBHOOK_SECRET,
            "send",
            "--id",
            "evt_leak_2",
        ],
        // A secret the scheme's reading refuses: a start-up error that must not echo it.
        vec![
            "--data-dir",
            d,
            "--secret",
            "whsec_%%",
            "--signature-scheme",
            "standard-webhooks",
            "verify",
            "-H",
            "webhook-id: x",
            "--body",
            "/dev/null",
        ],
        vec![
            "--data-dir",
            d,
            "--secret",
            WEBHOOK_SECRET,
            "verify",
            "-H",
            "Zof-Signature: sha256=00",
            "--body",
            "/dev/null",
        ],
    ] {
        let (_, out, err) = zofhook(&args, &debug);
        outputs.push_str(&out);
        outputs.push_str(&err);
    }
    let everything = format!("{outputs}\n{}", serve.stderr());
    drop(serve);
    assert!(
        everything.contains("downstream failed"),
        "the failure paths were logged"
    );
    assert!(
        everything.contains("signature rejected"),
        "the forged delivery was logged"
    );
    assert!(
        fake.seen("/v1/runs/run_leak").len() >= 3,
        "the failure paths ran"
    );
    for needle in [
        WEBHOOK_SECRET,
        "c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1sZWFr",
        TOKEN,
    ] {
        assert!(!everything.contains(needle), "{needle} leaked");
    }
}

/// A small tmpfs mounted on a fresh dir, unmounted when dropped (needs root, as on this machine).
struct SmallDisk {
    /// The mount point; removed after the unmount in Drop.
    path: e2e::DataDir,
}

impl SmallDisk {
    /// The disk, or `None` only when a person set `ZOFHOOK_TEST_NO_MOUNTS=1` on purpose (a
    /// machine without root). A machine that refuses the mount otherwise fails the test, with the
    /// reason: a test that cannot run must not pass.
    fn mount(size: &str) -> Option<SmallDisk> {
        if std::env::var("ZOFHOOK_TEST_NO_MOUNTS").as_deref() == Ok("1") {
            eprintln!("NOT RUN: ZOFHOOK_TEST_NO_MOUNTS=1 leaves out the tests that mount a tmpfs");
            return None;
        }
        let path = data_dir();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                path.to_str().unwrap(),
            ])
            .output();
        match out {
            Ok(out) if out.status.success() => Some(SmallDisk { path }),
            Ok(out) => panic!(
                "this test mounts a {size} tmpfs and needs root (CI runs as root); mount said: {}\n\
                 set ZOFHOOK_TEST_NO_MOUNTS=1 to leave it out on purpose",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => panic!("this test mounts a tmpfs and cannot run `mount`: {e}"),
        }
    }

    fn remount(&self, options: &str) {
        // A just-killed process may hold its files for a moment: retry briefly.
        for _ in 0..50 {
            let out = std::process::Command::new("mount")
                .args([
                    "-o",
                    &format!("remount,{options}"),
                    self.path.to_str().unwrap(),
                ])
                .output()
                .unwrap();
            if out.status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let holders = std::process::Command::new("sh")
            .args([
                "-c",
                &format!(
                    "ls -l /proc/*/fd 2>/dev/null | grep {} || true",
                    self.path.display()
                ),
            ])
            .output()
            .unwrap();
        panic!(
            "remount {options} failed; open files: {}",
            String::from_utf8_lossy(&holders.stdout)
        );
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&*self.path)
            .status();
    }
}

fn integrity(dir: &std::path::Path) -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('pragma integrity_check').fetchone()[0])"])
        .arg(dir.join("zofhook.db"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn big_event(id: &str) -> Vec<u8> {
    json!({"id": id, "type": "run.completed", "created": "2026-05-20T12:00:00Z",
           "data": {"object": {"organization_id": "org_a", "run_id": "run_1", "log": "x".repeat(200_000)}}})
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn a_full_data_dir_answers_503_loses_nothing_and_recovers() {
    let Some(disk) = SmallDisk::mount("2m") else {
        return;
    };
    let d = disk.path.to_str().unwrap().to_string();
    const SECRET: &str = "disk-test-secret";
    let serve = Serve::start(
        &["--data-dir", &d, "--secret", SECRET],
        &["--workers", "1"],
        &[],
    );
    let client = reqwest::Client::new();
    let mut accepted = HashSet::new();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    // Fill the disk with 200 KB events.
    for i in 0..40 {
        let id = format!("evt_full_{i}");
        let status = post_status(&client, &serve.url, SECRET, &big_event(&id)).await;
        *statuses.entry(status).or_default() += 1;
        if status == 200 {
            accepted.insert(id);
        }
    }
    assert!(
        statuses.get(&503).is_some_and(|n| *n > 0),
        "the disk filled up: {statuses:?}"
    );
    assert_eq!(
        statuses.keys().filter(|s| **s != 200 && **s != 503).count(),
        0,
        "{statuses:?}"
    );
    assert!(
        serve.stderr().contains("unavailable"),
        "the store error was logged"
    );

    // Room again: deliveries succeed, and everything answered 200 is processed.
    disk.remount("size=64m");
    let again = "evt_full_after";
    assert_eq!(
        post_status(&client, &serve.url, SECRET, &big_event(again)).await,
        200
    );
    accepted.insert(again.to_string());

    wait_processed(&disk.path, &accepted, Duration::from_secs(30));
    drop(serve);
    assert_eq!(integrity(&disk.path), "ok", "no corruption");
    eprintln!(
        "full disk: {statuses:?}; {} accepted, all processed, integrity ok",
        accepted.len()
    );
}

#[tokio::test]
async fn a_read_only_data_dir_stops_start_up_with_a_clear_error_and_no_damage() {
    let Some(disk) = SmallDisk::mount("8m") else {
        return;
    };
    let d = disk.path.to_str().unwrap().to_string();
    const SECRET: &str = "ro-test-secret";
    let mut serve = Serve::start(&["--data-dir", &d, "--secret", SECRET], &[], &[]);
    let client = reqwest::Client::new();
    assert_eq!(
        post_status(&client, &serve.url, SECRET, &big_event("evt_before_ro")).await,
        200
    );
    let started = Instant::now();
    loop {
        let (_, out, _) = zofhook(
            &[
                "--data-dir",
                &d,
                "events",
                "show",
                "evt_before_ro",
                "--json",
            ],
            &[],
        );
        if serde_json::from_str::<Value>(&out).unwrap()["status"] == "processed" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(serve.signal("TERM").code(), Some(0));
    // Linux refuses a read-only remount while the store is open, so the store goes read-only
    // between runs, as a failing disk remounted read-only would leave it.
    disk.remount("ro");
    let out = std::process::Command::new("timeout")
        .args([
            "20",
            e2e::binary("zofhook").to_str().unwrap(),
            "--data-dir",
            &d,
            "--secret",
            SECRET,
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("embedded store at") && err.contains("zofhook.db"),
        "{err}"
    );
    disk.remount("rw");
    assert_eq!(integrity(&disk.path), "ok", "no corruption");
    let (_, out, _) = zofhook(
        &[
            "--data-dir",
            &d,
            "events",
            "show",
            "evt_before_ro",
            "--json",
        ],
        &[],
    );
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["status"],
        "processed"
    );
}
