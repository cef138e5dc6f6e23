//! Load and its checks, shared by the end-to-end tests of `zofhook serve` (tests/serve.rs) and
//! `zofhook --aws serve` (tests/serve_aws.rs): signed deliveries fired many at a time, the
//! duplicate storm, and the checks that a storm's pipeline settled with one `accepted` and one
//! notification per id.

use crate::fake::Fake;
use crate::{event, signature, Serve};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn secret_in(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("secret"))
        .unwrap()
        .trim()
        .to_string()
}

pub async fn post(client: &reqwest::Client, url: &str, secret: &str, body: &[u8]) -> (u16, Value) {
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

/// Fires `n` distinct events, 50 at a time; returns the ids that got a 2xx. `landed` counts
/// them as they come back.
pub async fn fire_counting(
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

pub async fn fire(url: &str, secret: &str, prefix: &str, n: usize) -> HashSet<String> {
    fire_counting(url, secret, prefix, n, Arc::default()).await
}

/// Posts `body` until it gets a 2xx (Zof retries a 503); returns the verdict word.
pub async fn deliver(client: &reqwest::Client, url: &str, secret: &str, body: &[u8]) -> String {
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
pub async fn accept_each(
    serve: &Serve,
    dir: &std::path::Path,
    prefix: &str,
    n: usize,
) -> Vec<String> {
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

/// The load tests of this file, one at a time: the emulator is one Python process, and two storms
/// on it at once (beside a second test suite on 2 cores) starve every call past its timeout.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What a storm's deliveries were answered: the verdict counts per id, and the ids one of whose
/// deliveries was answered 503 `unavailable` (its writes may have landed after its deadline).
pub struct Stormed {
    pub verdicts: HashMap<String, HashMap<String, usize>>,
    pub unavailable: HashSet<String>,
}

/// 2,000 deliveries of 400 ids (each sent 1–10 times), shuffled, 50 at a time.
pub async fn storm(url: &str, secret: &str, prefix: &str) -> Stormed {
    // A fixed plan: id i is sent 1 + (i * 7919 % 10) times; the order is a fixed shuffle.
    let mut plan: Vec<String> = Vec::new();
    let mut i = 0;
    while plan.len() < 2000 {
        for _ in 0..(1 + (i * 7919) % 10) {
            plan.push(format!("{prefix}_{i}"));
        }
        i += 1;
    }
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for k in (1..plan.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        plan.swap(k, (state % (k as u64 + 1)) as usize);
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(50));
    let mut tasks = Vec::new();
    for id in plan {
        let (client, url, secret) = (client.clone(), url.to_string(), secret.to_string());
        let permit = gate.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let body = event(&id, "org_a", &format!("run_{id}"));
            let mut unavailable = false;
            // Zof retries a 503 (in_progress / unavailable) until it gets an answer; here for
            // at most 180 s (six receive leases), then the test fails with the last answer.
            let first = Instant::now();
            let mut last = String::new();
            while first.elapsed() < Duration::from_secs(180) {
                let sent = client
                    .post(&url)
                    .header("zof-signature", signature(&secret, &body))
                    .body(body.clone())
                    .send()
                    .await;
                let response = match sent {
                    Ok(response) => response,
                    Err(e) => {
                        last = format!("{e:?}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let status = response.status().as_u16();
                let reply: Value = response.json().await.unwrap_or(Value::Null);
                if status == 503 {
                    unavailable |= reply["error"] == "unavailable";
                    last = format!("503 {reply}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                assert_eq!(status, 200, "{id}: {reply}");
                return (
                    id,
                    reply["status"].as_str().unwrap().to_string(),
                    unavailable,
                );
            }
            panic!("{id}: no 2xx within 180 s; last answer {last}");
        }));
    }
    let mut stormed = Stormed {
        verdicts: HashMap::new(),
        unavailable: HashSet::new(),
    };
    for t in tasks {
        let (id, verdict, unavailable) = t.await.unwrap();
        if unavailable {
            stormed.unavailable.insert(id.clone());
        }
        *stormed
            .verdicts
            .entry(id)
            .or_default()
            .entry(verdict)
            .or_default() += 1;
    }
    stormed
}

/// One `accepted` per id, never two. The one exception the protocol allows (and the model
/// checks): the delivery that recorded and queued the event ran out of time and answered 503
/// `unavailable` after its writes landed, so no delivery can be the one `accepted` and every
/// later one is `duplicate` (a 2xx: Zof stops retrying; the event is processed). Such ids are
/// counted and printed.
pub fn assert_exactly_one_accepted(stormed: &Stormed) {
    let mut none_accepted = 0;
    for (id, counts) in &stormed.verdicts {
        let accepted = counts.get("accepted").copied().unwrap_or(0);
        assert!(accepted <= 1, "{id}: {counts:?}");
        if accepted == 0 {
            assert!(
                stormed.unavailable.contains(id),
                "{id}: no delivery accepted, and none ran out of time: {counts:?}"
            );
            none_accepted += 1;
        }
        assert_eq!(
            counts
                .keys()
                .filter(|k| *k != "accepted" && *k != "duplicate")
                .count(),
            0,
            "{id}: {counts:?}"
        );
    }
    eprintln!(
        "{} ids: {} with one `accepted`, {none_accepted} whose recording delivery ran out of time",
        stormed.verdicts.len(),
        stormed.verdicts.len() - none_accepted
    );
}

/// The notifications per id, counted once the pipeline has settled: every id notified and
/// `settled` says so (every record processed, nothing left in the queue, visible or in flight).
/// Nothing notifies after that, so a second notification is seen wherever it came in. Each
/// notification carries its event id as `Idempotency-Key`.
pub async fn notifications_once_settled<F, Fut>(
    fake: &Fake,
    ids: &HashSet<String>,
    within: Duration,
    settled: F,
) -> HashMap<String, usize>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    loop {
        let mut per_id: HashMap<String, usize> = HashMap::new();
        for seen in fake.seen("/notify") {
            let id = seen.body["event_id"].as_str().unwrap().to_string();
            assert_eq!(
                seen.headers
                    .get("idempotency-key")
                    .and_then(|k| k.to_str().ok()),
                Some(id.as_str())
            );
            *per_id.entry(id).or_default() += 1;
        }
        let waiting = if ids.iter().all(|id| per_id.contains_key(id)) {
            settled().await
        } else {
            Err(format!("notified {} of {}", per_id.len(), ids.len()))
        };
        match waiting {
            Ok(()) => return per_id,
            Err(what) => assert!(
                started.elapsed() < within,
                "not settled within {within:?}: {what}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Settled, on the embedded store: every id `processed` and no message left but dead ones.
pub fn embedded_settled(dir: &std::path::Path, ids: &HashSet<String>) -> Result<(), String> {
    let processed: HashSet<String> = crate::events_json(dir)
        .into_iter()
        .filter(|e| e["status"] == "processed")
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let missing = ids.difference(&processed).count();
    if missing > 0 {
        return Err(format!("{missing} of {} not processed", ids.len()));
    }
    match queued(dir) {
        (0, _) => Ok(()),
        (live, _) => Err(format!("{live} messages left in the queue")),
    }
}

/// The embedded queue's messages: (live, dead-lettered), read from the data dir's store.
pub fn queued(dir: &std::path::Path) -> (u64, u64) {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys\n\
             db = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n\
             q = 'select count(*) from messages where dead = ?'\n\
             print(db.execute(q, (0,)).fetchone()[0], db.execute(q, (1,)).fetchone()[0])",
        ])
        .arg(dir.join("zofhook.db"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let counts: Vec<u64> = text
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    match counts[..] {
        [live, dead] => (live, dead),
        _ => panic!(
            "cannot read the queue: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Settled, on DynamoDB and SQS: nothing in the queue, visible or in flight, and every id
/// `processed` in the table.
pub async fn aws_settled(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    ids: &HashSet<String>,
) -> Result<(), String> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let counts: Vec<String> = attributes
        .attributes()
        .map(|a| a.values().cloned().collect())
        .unwrap_or_default();
    if counts.len() != 2 || counts.iter().any(|c| c != "0") {
        return Err(format!("the queue holds {counts:?} (visible, in flight)"));
    }
    let mut processed = HashSet::new();
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        for item in page.items() {
            let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
            if text("status").as_deref() == Some("processed") {
                processed.extend(text("id"));
            }
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    match ids.difference(&processed).count() {
        0 => Ok(()),
        missing => Err(format!("{missing} of {} not processed", ids.len())),
    }
}

/// Each id notified once, or once more for each notify POST of that id that `zofhook serve`
/// logged as retried (WARN `retrying`, in the span `notify{event_id=…}`): a POST whose answer did
/// not come within `DownstreamTimeoutMs` may have landed and is sent again with the same
/// `Idempotency-Key`, the repeat the README documents. Any other second notification is an effect
/// the protocol repeated, and fails.
pub fn assert_notified_once(notified: &HashMap<String, usize>, serve: &Serve) {
    let log = serve.stderr();
    let retried = |id: &str| {
        // The compact log prints `event_id="…"`, the JSON one `"event_id":"…"`.
        let (text, json) = (format!("event_id={id:?}"), format!("\"event_id\":{id:?}"));
        log.lines()
            .filter(|l| l.contains("retrying") && (l.contains(&text) || l.contains(&json)))
            .count()
    };
    let mut repeats = 0;
    for (id, n) in notified {
        if *n > 1 {
            let retries = retried(id);
            assert!(
                *n <= 1 + retries,
                "{id} notified {n} times, {retries} notify retries logged for it\n{log}"
            );
            repeats += n - 1;
        }
    }
    eprintln!(
        "{} ids notified, {repeats} repeated POSTs, each after a logged retry (same Idempotency-Key)",
        notified.len()
    );
}

pub async fn post_status(client: &reqwest::Client, url: &str, secret: &str, body: &[u8]) -> u16 {
    crate::post_signed(client, url, secret, body)
        .await
        .status()
        .as_u16()
}
