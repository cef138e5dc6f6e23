//! `zofhook` as a user runs it: the built binary, real HTTP, the embedded store in a temp data
//! dir, and `--aws` against the emulator.

use e2e::{data_dir, event, events_json, signature, wait_processed, zofhook, Serve};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn secret_in(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("secret"))
        .unwrap()
        .trim()
        .to_string()
}

async fn post(client: &reqwest::Client, url: &str, secret: &str, body: &[u8]) -> (u16, Value) {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("zof-signature", signature(secret, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

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

#[tokio::test]
async fn send_reaches_serve_with_nothing_but_the_data_dir() {
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let _serve = Serve::start(&["--data-dir", d], &[], &[]);
    let (code, out, err) = zofhook(
        &[
            "--data-dir",
            d,
            "send",
            "--id",
            "evt_send_1",
            "--run-id",
            "run_9",
            "--times",
            "3",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], r#"200 {"id":"evt_send_1","status":"accepted"}"#);
    assert_eq!(lines[1], r#"200 {"id":"evt_send_1","status":"duplicate"}"#);
    wait_processed(
        &dir,
        &HashSet::from(["evt_send_1".to_string()]),
        Duration::from_secs(10),
    );
    let (code, out, _) = zofhook(
        &["--data-dir", d, "events", "show", "evt_send_1", "--json"],
        &[],
    );
    assert_eq!(code, 0);
    let record: Value = serde_json::from_str(&out).unwrap();
    for key in [
        "id",
        "type",
        "status",
        "attempts",
        "received_at",
        "processed_at",
        "outcome",
    ] {
        assert!(record.get(key).is_some(), "{key} in {record}");
    }
    assert_eq!(record["run_id"], "run_9");
    assert_eq!(record["outcome"]["status"], "unknown");
    let (code, out, _) = zofhook(&["--data-dir", d, "events", "list"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("evt_send_1") && out.contains("processed"),
        "{out}"
    );
    let (code, _, err) = zofhook(&["--data-dir", d, "events", "show", "evt_nope"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("no event evt_nope"));
    // A file body with a wrong secret: printed, and the exit code says it failed.
    let file = dir.join("body.json");
    std::fs::write(&file, event("evt_send_2", "org_a", "r")).unwrap();
    let (code, out, _) = zofhook(
        &[
            "--data-dir",
            d,
            "--secret",
            "other",
            "send",
            "--body",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(out.trim(), r#"401 {"error":"invalid_signature"}"#);
}

#[test]
fn sign_and_verify_round_trip_and_catch_tampering() {
    let dir = data_dir();
    let body = dir.join("b.json");
    std::fs::write(&body, b"{\"id\":\"evt_1\"}").unwrap();
    let b = body.to_str().unwrap();
    for scheme in ["hmac-sha256", "timestamped", "standard-webhooks"] {
        let (code, out, err) = zofhook(
            &[
                "--secret",
                "whsec_czNjcmV0",
                "--signature-scheme",
                scheme,
                "sign",
                "--body",
                b,
            ],
            &[],
        );
        assert_eq!(code, 0, "{err}");
        let mut args = vec![
            "--secret",
            "whsec_czNjcmV0",
            "--signature-scheme",
            scheme,
            "verify",
            "--body",
            b,
        ];
        for line in out.lines() {
            args.extend(["-H", line]);
        }
        let (code, out2, _) = zofhook(&args, &[]);
        assert_eq!((code, out2.trim()), (0, "valid"), "{scheme}: {out}");
        std::fs::write(&body, b"{\"id\":\"evt_2\"}").unwrap();
        let (code, out3, _) = zofhook(&args, &[]);
        assert_eq!(code, 1, "{scheme}");
        assert!(out3.starts_with("invalid"));
        std::fs::write(&body, b"{\"id\":\"evt_1\"}").unwrap();
    }
}

#[test]
fn a_bad_setting_stops_start_up_naming_it() {
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let (code, _, err) = zofhook(&["--data-dir", d, "serve", "--max-body-bytes", "0"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("ZOFHOOK_MAX_BODY_BYTES (MaxBodyBytes)") && err.contains("accepts"),
        "{err}"
    );
    let (code, _, err) = zofhook(
        &["--data-dir", d, "serve"],
        &[("ZOFHOOK_SIGNATURE_SCHEME", "md5".into())],
    );
    assert_eq!(code, 2);
    assert!(err.contains("ZOFHOOK_SIGNATURE_SCHEME"), "{err}");
    // Read as base64 (standard-webhooks' convention), a secret that is not base64 fails closed.
    let (code, _, err) = zofhook(
        &[
            "--data-dir",
            d,
            "--secret",
            "whsec_%%",
            "--signature-scheme",
            "standard-webhooks",
            "serve",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("ZOFHOOK_SECRET") && !err.contains("%%"),
        "{err}"
    );
    let (code, _, err) = zofhook(&["--data-dir", d, "send"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("no secret"), "{err}");
}

/// Fires `n` distinct events, 50 at a time; returns the ids that got a 2xx. `landed` counts
/// them as they come back.
async fn fire_counting(
    url: &str,
    secret: &str,
    prefix: &str,
    n: usize,
    landed: Arc<AtomicUsize>,
) -> HashSet<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(50));
    let mut tasks = Vec::new();
    for i in 0..n {
        let (client, url, secret, landed) = (
            client.clone(),
            url.to_string(),
            secret.to_string(),
            landed.clone(),
        );
        let permit = gate.clone().acquire_owned().await.unwrap();
        let id = format!("{prefix}_{i}");
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let body = event(&id, "org_a", "run_1");
            let sent = client
                .post(&url)
                .header("zof-signature", signature(&secret, &body))
                .body(body)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    landed.fetch_add(1, Ordering::SeqCst);
                    Some(id)
                }
                _ => None,
            }
        }));
    }
    let mut ok = HashSet::new();
    for t in tasks {
        if let Some(id) = t.await.unwrap() {
            ok.insert(id);
        }
    }
    ok
}

async fn fire(url: &str, secret: &str, prefix: &str, n: usize) -> HashSet<String> {
    fire_counting(url, secret, prefix, n, Arc::default()).await
}

#[tokio::test]
async fn kill_9_in_flight_then_restart_processes_every_accepted_delivery() {
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    // Default leases: the restart releases whatever the killed process held.
    let leases: [&str; 0] = [];
    let mut serve = Serve::start(&["--data-dir", d], &leases, &[]);
    let secret = secret_in(&dir);
    let url = serve.url.clone();
    let landed = Arc::new(AtomicUsize::new(0));
    let firing = tokio::spawn({
        let (url, secret, landed) = (url.clone(), secret.clone(), landed.clone());
        async move { fire_counting(&url, &secret, "evt_kill", 2000, landed).await }
    });
    // Kill while deliveries are in flight: after the first 100 have been answered.
    let started = Instant::now();
    while landed.load(Ordering::SeqCst) < 100 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "deliveries are not landing"
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
    let _restarted = Serve::start(&["--data-dir", d], &leases, &[]);
    wait_processed(&dir, &accepted, Duration::from_secs(30));
}

#[tokio::test]
async fn sigterm_exits_0_and_loses_nothing() {
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let mut serve = Serve::start(&["--data-dir", d], &["--workers", "1"], &[]);
    let secret = secret_in(&dir);
    let accepted = fire(&serve.url.clone(), &secret, "evt_term", 100).await;
    assert_eq!(accepted.len(), 100);
    let status = serve.signal("TERM");
    assert_eq!(status.code(), Some(0), "{}", serve.stderr());
    // Whatever was still queued is resumed by the next start.
    let _restarted = Serve::start(&["--data-dir", d], &[], &[]);
    wait_processed(&dir, &accepted, Duration::from_secs(30));
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
async fn aws_mode_runs_the_same_pipeline_on_dynamodb_and_sqs() {
    let sdk = e2e::sdk().await;
    let (_, table) = e2e::create_table(&sdk).await;
    let (sqs, queue_url) = e2e::create_queue(&sdk).await;
    let (_, dlq_url) = e2e::create_queue(&sdk).await;
    let env: Vec<(&str, String)> = e2e::aws_env();
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let aws = [
        "--data-dir",
        d,
        "--aws",
        "--table-name",
        &table,
        "--queue-url",
        &queue_url,
        "--dlq-url",
        &dlq_url,
    ];
    let serve = Serve::start(&aws, &[], &env);
    assert!(
        serve.banner.iter().any(|l| l.contains(&table)),
        "{:?}",
        serve.banner
    );
    let secret = secret_in(&dir);
    let client = reqwest::Client::new();
    let body = event("evt_aws_1", "org_a", "run_1");
    assert_eq!(post(&client, &serve.url, &secret, &body).await.0, 200);
    assert_eq!(
        post(&client, &serve.url, &secret, &body).await.1["status"],
        "duplicate"
    );
    // A dead-lettered event (its record `failed`, its message in the DLQ), redriven with
    // `zofhook --aws redrive`, is processed too.
    let dead = String::from_utf8(event("evt_aws_dead", "org_a", "run_2")).unwrap();
    let mut failed = e2e::failed_record("evt_aws_dead", &dead, "run_2", "sink down");
    failed.attempts = 10;
    failed.lease_token = Some("worker".into());
    failed.delivery_token = Some("delivery".into());
    aws_sdk_dynamodb::Client::new(&sdk)
        .put_item()
        .table_name(&table)
        .set_item(Some(zofhook_core::ledger::dynamodb::to_item(&failed)))
        .send()
        .await
        .unwrap();
    sqs.send_message()
        .queue_url(&dlq_url)
        .message_body(&dead)
        .send()
        .await
        .unwrap();
    let mut args = aws.to_vec();
    args.push("redrive");
    let (code, out, err) = zofhook(&args, &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        "moved 1 dead-lettered event(s) back to the queue"
    );
    let started = Instant::now();
    for id in ["evt_aws_1", "evt_aws_dead"] {
        loop {
            let mut args = aws.to_vec();
            args.extend(["events", "show", id, "--json"]);
            let (code, out, _) = zofhook(&args, &env);
            if code == 0 && serde_json::from_str::<Value>(&out).unwrap()["status"] == "processed" {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{id} not processed: {out}\n{}",
                serve.stderr()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let mut args = aws.to_vec();
    args.extend(["events", "list", "--json"]);
    let (code, out, _) = zofhook(&args, &env);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Vec<Value>>(&out).unwrap().len(), 2);
}

#[test]
fn every_setting_is_a_flag_and_a_variable() {
    let (code, help, _) = zofhook(&["serve", "--help"], &[]);
    assert_eq!(code, 0);
    for setting in zofhook_core::config::SETTINGS {
        assert!(
            help.contains(&format!("--{}", setting.flag())),
            "--{} missing from:\n{help}",
            setting.flag()
        );
        assert!(help.contains(&setting.env()), "{} missing", setting.env());
    }
    for flag in [
        "--data-dir",
        "--listen",
        "--workers",
        "--secret",
        "--previous-secret",
        "--aws",
        "--table-name",
        "--queue-url",
        "--dlq-url",
    ] {
        assert!(help.contains(flag), "{flag} missing");
    }
    // The variable works as well as the flag.
    let dir = e2e::data_dir();
    let (code, _, err) = zofhook(
        &["--data-dir", dir.to_str().unwrap(), "serve"],
        &[("ZOFHOOK_DEDUPE_RETENTION_DAYS", "0".into())],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("ZOFHOOK_DEDUPE_RETENTION_DAYS (DedupeRetentionDays)"),
        "{err}"
    );
}
