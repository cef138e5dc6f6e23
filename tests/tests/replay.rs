//! Replay and selections (docs/design.md section 8) through the real `zofhook`, on the embedded store
//! and on DynamoDB + SQS in the emulator: a processed event replayed by id is processed again
//! with the same idempotency key; a selection of 250 failed events needs --yes and then all end
//! `processed`; `events list --since 1h --status failed` pages through 1,000 records with no
//! duplicates and no gaps; the largest body round-trips byte for byte.

use e2e::fake::{answer, Fake};
use e2e::{data_dir, event, signature, wait_processed, zofhook, Serve};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use zofhook_core::ledger::{Ledger, Record, Status};

fn show(global: &[&str], id: &str, env: &[(&str, String)]) -> Value {
    let mut args = global.to_vec();
    args.extend(["events", "show", id, "--json"]);
    let (code, out, err) = zofhook(&args, env);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

async fn wait_notified(fake: &Fake, times: usize) {
    let started = Instant::now();
    while fake.seen("/notify").len() < times {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "notified {} times, not {times}",
            fake.seen("/notify").len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `id`, waits for it to be processed, replays it by id, and checks the second
/// notification carries the same key. `global` names the store (`--data-dir`, or `--aws …`).
async fn replayed_by_id(global: &[&str], env: &[(&str, String)], fake: &Fake, id: &str) {
    let mut send = global.to_vec();
    send.extend(["send", "--id", id]);
    let (code, out, err) = zofhook(&send, env);
    assert_eq!(code, 0, "{out}{err}");
    let started = Instant::now();
    while show(global, id, env)["status"] != "processed" {
        assert!(started.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_notified(fake, 1).await;
    // A dry run says what it would do and changes nothing.
    let mut dry = global.to_vec();
    dry.extend(["replay", id, "--dry-run"]);
    let (code, out, _) = zofhook(&dry, env);
    assert_eq!(
        (code, out.trim()),
        (0, format!("would replay 1 event(s): {id}").as_str())
    );
    assert_eq!(show(global, id, env)["replays"], 0);

    let mut replay = global.to_vec();
    replay.extend(["replay", id, "evt_nobody_sent_this"]);
    let (code, out, err) = zofhook(&replay, env);
    assert_eq!(code, 1, "one id was not found: {out}{err}");
    assert!(out.contains("replayed 1 event(s)"), "{out}");
    assert!(out.contains("not found 1: evt_nobody_sent_this"), "{out}");
    wait_notified(fake, 2).await;
    let seen = fake.seen("/notify");
    assert_eq!(seen.len(), 2);
    for call in &seen {
        assert_eq!(call.headers["idempotency-key"], id);
    }
    let started = Instant::now();
    loop {
        let record = show(global, id, env);
        if record["status"] == "processed" && record["replays"] == 1 {
            assert!(record["body"].as_str().unwrap().contains(id));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{record}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// The fake answers on this runtime while the test runs blocking commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processed_event_replayed_by_id_is_processed_again_on_the_embedded_store() {
    let fake = Fake::default();
    fake.script("/notify", vec![], answer(200, json!({})));
    let notify = format!("{}/notify", fake.start().await);
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let _serve = Serve::start(&["--data-dir", d], &["--notify-url", &notify], &[]);
    replayed_by_id(&["--data-dir", d], &[], &fake, "evt_replay_local").await;

    // A record from before bodies were archived is reported and left as it is.
    {
        let ledger = zofhook_core::ledger::sqlite::SqliteLedger::new(
            zofhook_core::sqlite::Db::open(&dir).unwrap(),
        );
        ledger
            .begin(&record("evt_from_before", Status::Processed, None), 0)
            .await
            .unwrap();
    }
    let (code, out, _) = zofhook(&["--data-dir", d, "replay", "evt_from_before"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("skipped 1: evt_from_before (no archived body)"),
        "{out}"
    );
    assert_eq!(
        show(&["--data-dir", d], "evt_from_before", &[])["status"],
        "processed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processed_event_replayed_by_id_is_processed_again_on_dynamodb_and_sqs() {
    let sdk = e2e::sdk().await;
    let (_, table) = e2e::create_table(&sdk).await;
    let (_, queue_url) = e2e::create_queue(&sdk).await;
    let fake = Fake::default();
    fake.script("/notify", vec![], answer(200, json!({})));
    let notify = format!("{}/notify", fake.start().await);
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let env = e2e::aws_env();
    let aws = [
        "--data-dir",
        d,
        "--aws",
        "--table-name",
        &table,
        "--queue-url",
        &queue_url,
    ];
    let _serve = Serve::start(&aws, &["--notify-url", &notify], &env);
    replayed_by_id(&aws, &env, &fake, "evt_replay_aws").await;
}

fn record(id: &str, status: Status, body: Option<&str>) -> Record {
    Record {
        attempts: 1,
        error: Some("notify: HTTP 400".into()),
        body: body.map(str::to_string),
        ..e2e::ledger_record(id, &zofhook_core::rfc3339(zofhook_core::now_ms()), status)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_of_250_failed_events_needs_yes_and_then_all_end_processed() {
    let fake = Fake::default();
    // 400 is permanent: each event fails once and, with MaxReceiveCount 1, stays `failed`.
    let fail = answer(400, json!({"error": "down"}));
    fake.script("/notify", vec![fail; 250], answer(200, json!({})));
    let notify = format!("{}/notify", fake.start().await);
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let serve = Serve::start(
        &["--data-dir", d],
        &[
            "--notify-url",
            &notify,
            "--max-receive-count",
            "1",
            "--workers",
            "4",
        ],
        &[],
    );
    let secret = std::fs::read_to_string(dir.join("secret")).unwrap();
    let client = reqwest::Client::new();
    let mut ids = HashSet::new();
    for i in 0..250 {
        let id = format!("evt_bulk_{i}");
        let body = event(&id, "org_a", "run_1");
        let response = e2e::post_signed(&client, &serve.url, secret.trim(), &body).await;
        assert_eq!(response.status().as_u16(), 200);
        ids.insert(id);
    }
    let failed = || {
        e2e::events_json(&dir)
            .into_iter()
            .filter(|e| e["status"] == "failed")
            .count()
    };
    let started = Instant::now();
    while failed() < 250 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} failed",
            failed()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let select = [
        "--data-dir",
        d,
        "replay",
        "--status",
        "failed",
        "--since",
        "1h",
    ];
    let mut dry = select.to_vec();
    dry.push("--dry-run");
    let (code, out, _) = zofhook(&dry, &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("would replay 250 event(s): "), "{out}");
    let (code, _, err) = zofhook(&select, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("250 events selected") && err.contains("--yes"),
        "{err}"
    );
    assert_eq!(failed(), 250, "nothing changed without --yes");
    let mut yes = select.to_vec();
    yes.push("--yes");
    let (code, out, err) = zofhook(&yes, &[]);
    assert_eq!((code, out.trim()), (0, "replayed 250 event(s)"), "{err}");
    wait_processed(&dir, &ids, Duration::from_secs(60));
    assert!(e2e::events_json(&dir).iter().all(|e| e["replays"] == 1));
}

/// Pages through `events list --since 1h --status failed --json` following the cursor.
fn page_through(global: &[&str], env: &[(&str, String)]) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = global.to_vec();
        args.extend([
            "events", "list", "--since", "1h", "--status", "failed", "--json", "--limit", "100",
        ]);
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let (code, out, err) = zofhook(&args, env);
        assert_eq!(code, 0, "{err}");
        let page: Vec<Value> = serde_json::from_str(&out).unwrap();
        assert!(page.len() <= 100);
        assert!(page
            .iter()
            .all(|e| e["status"] == "failed" && e.get("body").is_none()));
        ids.extend(page.iter().map(|e| e["id"].as_str().unwrap().to_string()));
        pages += 1;
        assert!(pages <= 20, "the cursor does not end");
        match err
            .lines()
            .find_map(|l| l.strip_prefix("next page: --cursor "))
        {
            Some(next) => cursor = Some(next.trim().to_string()),
            None => return ids,
        }
    }
}

async fn thousand_failed_and_noise(ledger: &dyn Ledger) -> HashSet<String> {
    let mut failed = HashSet::new();
    for i in 0..1000 {
        let id = format!("evt_page_{i:04}");
        ledger
            .begin(&record(&id, Status::Failed, Some("{}")), 0)
            .await
            .unwrap();
        failed.insert(id);
    }
    for i in 0..50 {
        ledger
            .begin(
                &record(&format!("evt_done_{i}"), Status::Processed, Some("{}")),
                0,
            )
            .await
            .unwrap();
    }
    failed
}

fn assert_every_record_once(listed: Vec<String>, failed: &HashSet<String>) {
    let unique: HashSet<String> = listed.iter().cloned().collect();
    assert_eq!(unique.len(), listed.len(), "a record on two pages");
    assert_eq!(&unique, failed, "a record missing");
}

#[tokio::test]
async fn events_list_pages_through_1000_failed_records_on_the_embedded_store() {
    let dir = data_dir();
    let ledger = zofhook_core::ledger::sqlite::SqliteLedger::new(
        zofhook_core::sqlite::Db::open(&dir).unwrap(),
    );
    let failed = thousand_failed_and_noise(&ledger).await;
    drop(ledger);
    let listed = page_through(&["--data-dir", dir.to_str().unwrap()], &[]);
    assert_every_record_once(listed, &failed);
}

#[tokio::test]
async fn events_list_pages_through_1000_failed_records_on_dynamodb() {
    let sdk = e2e::sdk().await;
    let (client, table) = e2e::create_table(&sdk).await;
    let ledger = zofhook_core::ledger::dynamodb::DynamoLedger::new(client, table.clone());
    let failed = thousand_failed_and_noise(&ledger).await;
    // Only --table-name: listing needs nothing else.
    let listed = page_through(&["--aws", "--table-name", &table], &e2e::aws_env());
    assert_every_record_once(listed, &failed);
}

#[tokio::test]
async fn the_largest_body_round_trips_byte_for_byte_on_dynamodb_and_sqs() {
    let sdk = e2e::sdk().await;
    let (client, table) = e2e::create_table(&sdk).await;
    let (_, queue_url) = e2e::create_queue(&sdk).await;
    let dir = data_dir();
    let env = e2e::aws_env();
    let serve = Serve::start_aws(&dir, &table, &queue_url, &[], &env);
    // A run.completed padded to exactly MaxBodyBytes (262144), the DynamoDB item under 400 KB.
    let mut body = event("evt_largest", "org_a", "run_1");
    let pad = 262_144 - body.len() - r#","pad":"""#.len();
    body.truncate(body.len() - 1);
    body.extend_from_slice(format!(r#","pad":"{}"}}"#, "x".repeat(pad)).as_bytes());
    assert_eq!(body.len(), 262_144);
    let secret = std::fs::read_to_string(dir.join("secret")).unwrap();
    let response = reqwest::Client::new()
        .post(&serve.url)
        .header("zof-signature", signature(secret.trim(), &body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "{}",
        response.text().await.unwrap()
    );
    let ledger = zofhook_core::ledger::dynamodb::DynamoLedger::new(client, table);
    let stored = ledger.get("evt_largest").await.unwrap().unwrap();
    assert_eq!(stored.body.unwrap().as_bytes(), &body[..]);
}

#[tokio::test]
async fn a_selection_is_replayed_on_dynamodb_and_sqs() {
    let sdk = e2e::sdk().await;
    let (client, table) = e2e::create_table(&sdk).await;
    let (sqs, queue_url) = e2e::create_queue(&sdk).await;
    let ledger = zofhook_core::ledger::dynamodb::DynamoLedger::new(client, table.clone());
    let mut failed = HashSet::new();
    for i in 0..5 {
        let id = format!("evt_aws_failed_{i}");
        let body = String::from_utf8(event(&id, "org_a", "run_1")).unwrap();
        ledger
            .begin(&record(&id, Status::Failed, Some(&body)), 0)
            .await
            .unwrap();
        failed.insert(body);
    }
    ledger
        .begin(&record("evt_aws_done", Status::Processed, Some("{}")), 0)
        .await
        .unwrap();
    let env = e2e::aws_env();
    let aws = ["--aws", "--table-name", &table, "--queue-url", &queue_url];
    let mut args = aws.to_vec();
    args.extend(["replay", "--status", "failed", "--since", "1h"]);
    let (code, out, err) = zofhook(&args, &env);
    assert_eq!((code, out.trim()), (0, "replayed 5 event(s)"), "{err}");
    // Exactly the failed ones' archived bodies are queued, and they are `enqueued` again.
    let sent: HashSet<String> = e2e::drain(&sqs, &queue_url)
        .await
        .iter()
        .map(|m| m.body().unwrap().to_string())
        .collect();
    assert_eq!(sent, failed);
    let record = ledger.get("evt_aws_failed_0").await.unwrap().unwrap();
    assert_eq!((record.status, record.replays), (Status::Enqueued, 1));
    assert_eq!(
        ledger.get("evt_aws_done").await.unwrap().unwrap().status,
        Status::Processed
    );
}

#[test]
fn bad_selections_and_cursors_are_refused_naming_the_flag_and_change_nothing() {
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    for (args, says) in [
        (
            vec!["events", "list", "--status", "done"],
            "--status \"done\"",
        ),
        (
            vec!["events", "list", "--since", "yesterday"],
            "--since \"yesterday\"",
        ),
        (
            vec!["replay", "--until", "soon", "--dry-run"],
            "--until \"soon\"",
        ),
        (
            vec!["events", "list", "--cursor", "not-a-cursor"],
            "not a cursor",
        ),
        (vec!["replay"], "name event ids, or a selection"),
        (
            vec!["replay", "evt_1", "--status", "failed"],
            "name event ids, or a selection",
        ),
    ] {
        let mut all = vec!["--data-dir", d];
        all.extend(args.iter().copied());
        let (code, out, err) = zofhook(&all, &[]);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// The note `listen --replayed` follows cannot be written (every `UpdateItem` of a `#replay#`
/// item answered 500 by the fault proxy): the replay still happens (the record `enqueued`, one
/// more replay, its message on the queue), and `replay` says what was not noted and exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_whose_note_fails_is_replayed_and_says_it_was_not_noted() {
    use e2e::fault::{Fault, FaultProxy, Rule};
    let sdk = e2e::sdk().await;
    let (dynamodb, table) = e2e::create_table(&sdk).await;
    let (sqs, queue_url) = e2e::create_queue(&sdk).await;
    let body = String::from_utf8(event("evt_unnoted", "org_a", "run_1")).unwrap();
    let ledger = zofhook_core::ledger::dynamodb::DynamoLedger::new(dynamodb, table.clone());
    let done = record("evt_unnoted", Status::Processed, Some(&body));
    ledger.begin(&done, zofhook_core::now_ms()).await.unwrap();
    let proxy = FaultProxy::new(&e2e::endpoint());
    proxy.rule(Rule {
        operation: "UpdateItem",
        body_contains: Some("#replay#"),
        fault: Fault::Fail,
        times: 100,
    });
    let mut env = e2e::aws_env();
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL", proxy.start().await));
    let args = [
        "--aws",
        "--table-name",
        &table,
        "--queue-url",
        &queue_url,
        "replay",
        "evt_unnoted",
    ];
    let (code, out, err) = zofhook(&args, &env);
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "replayed 1 event(s)", "{out}");
    assert!(
        lines[1]
            .starts_with("replayed but not noted for `zofhook listen --replayed` 1: evt_unnoted ("),
        "{out}"
    );
    assert!(proxy.applied().iter().any(|o| o == "UpdateItem"));
    let stored = ledger.get("evt_unnoted").await.unwrap().unwrap();
    assert_eq!((stored.status, stored.replays), (Status::Enqueued, 1));
    let sent = e2e::drain(&sqs, &queue_url).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body(), Some(body.as_str()));
    assert!(ledger
        .replays_since(&zofhook_core::rfc3339(zofhook_core::now_ms() - 60_000))
        .await
        .unwrap()
        .is_empty());
}
