//! The response deadline on the real `zofhook serve`, at default settings, through the production
//! AWS clients (`aws::sdk_config`, with its timeouts and retries, as the receiver Lambda builds
//! them): a delivery whose store calls all hang is answered 503 `unavailable` inside Zof's 10 s;
//! store calls that outlast `ResponseDeadlineMs` are cut off by the deadline itself; a dead
//! endpoint is answered 503 without waiting for it. The same on the embedded store, whose writes
//! hang while another process holds the database.
//!
//! A bound on time is the claim here, so these tests measure it. The lower bounds are sound on
//! any machine (a timer never fires early); the upper bound is Zof's 10 s, 2 s above the default
//! deadline of 8 s, which load delays by milliseconds, not seconds.

use e2e::{data_dir, event, Serve};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Zof's limit: an answer later than this is a failed delivery.
const ZOF_LIMIT: Duration = Duration::from_secs(10);
/// `ResponseDeadlineMs`' default.
const DEADLINE: Duration = Duration::from_millis(8000);

/// An endpoint that accepts every connection and never answers: a hung AWS endpoint.
async fn hung_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}")
}

/// An endpoint that refuses every connection: a port this test holds bound but not listening,
/// so no other process can take it while the test runs.
fn dead_endpoint() -> (tokio::net::TcpSocket, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, format!("http://{addr}"))
}

/// The AWS environment of a child process whose every AWS call goes to `endpoint`.
fn aws_env_at(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_REGION", e2e::REGION.to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
    ]
}

/// `serve --aws` on a table and queue behind `endpoint`, with `args` and otherwise defaults.
fn serve_aws_at(dir: &std::path::Path, endpoint: &str, args: &[&str]) -> Serve {
    let queue = format!("{endpoint}/000000000000/zofhook-events");
    Serve::start_aws(dir, "zofhook-ledger", &queue, args, &aws_env_at(endpoint))
}

/// One signed delivery of a new event: (status, body, Retry-After, how long the answer took).
async fn deliver(serve: &Serve, dir: &std::path::Path, id: &str) -> (u16, Value, String, Duration) {
    let secret = std::fs::read_to_string(dir.join("secret")).unwrap();
    let body = event(id, "org_a", "run_1");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let started = Instant::now();
    let response = e2e::post_signed(&client, &serve.url, secret.trim(), &body).await;
    let took = started.elapsed();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let reply = response.json().await.unwrap_or(Value::Null);
    (status, reply, retry_after, took)
}

/// The receiver's log line for the delivery of `id`.
fn delivery_line(serve: &Serve, id: &str) -> String {
    serve
        .stderr()
        .lines()
        .find(|l| l.contains("delivery") && l.contains(id))
        .unwrap_or_default()
        .to_string()
}

fn assert_unavailable(what: &str, answer: &(u16, Value, String, Duration), serve: &Serve) {
    let (status, reply, retry_after, took) = answer;
    assert_eq!(
        (*status, reply["error"].as_str(), retry_after.as_str()),
        (503, Some("unavailable"), "5"),
        "{what}: {reply}\n{}",
        serve.stderr()
    );
    assert!(
        *took < ZOF_LIMIT,
        "{what}: answered after {took:?}, past Zof's 10 s\n{}",
        serve.stderr()
    );
    eprintln!("{what}: 503 unavailable after {took:?}");
}

#[tokio::test]
async fn every_store_call_hung_on_dynamodb_and_sqs_is_answered_503_inside_zofs_limit_at_defaults() {
    let endpoint = hung_endpoint().await;
    let dir = data_dir();
    let serve = serve_aws_at(&dir, &endpoint, &[]);
    let answer = deliver(&serve, &dir, "evt_all_hung").await;
    assert_unavailable("every call hung, defaults", &answer, &serve);
    // The put and the send beside it time out after StoreTimeoutMs (2 s), so the answer cannot
    // come sooner: the production client waited for them, as configured.
    assert!(answer.3 >= Duration::from_secs(2), "{:?}", answer.3);
}

#[tokio::test]
async fn store_calls_that_outlast_the_deadline_are_cut_off_by_it() {
    let endpoint = hung_endpoint().await;
    let dir = data_dir();
    // StoreTimeoutMs at its largest allowed value (9 s), above the default deadline (8 s): only
    // the deadline can end this delivery in time.
    let serve = serve_aws_at(&dir, &endpoint, &["--store-timeout-ms", "9000"]);
    let answer = deliver(&serve, &dir, "evt_past_deadline").await;
    assert_unavailable("calls longer than the deadline", &answer, &serve);
    assert!(
        answer.3 >= DEADLINE,
        "answered after {:?}, before the deadline",
        answer.3
    );
    let line = delivery_line(&serve, "evt_past_deadline");
    assert!(
        serve.stderr().contains("response deadline reached"),
        "{line}\n{}",
        serve.stderr()
    );
}

#[tokio::test]
async fn a_dead_endpoint_is_answered_503_without_waiting_for_the_deadline() {
    let (_held, endpoint) = dead_endpoint();
    let dir = data_dir();
    let serve = serve_aws_at(&dir, &endpoint, &[]);
    let answer = deliver(&serve, &dir, "evt_dead_endpoint").await;
    assert_unavailable("connection refused, defaults", &answer, &serve);
    // Refused connections fail each call at once (the SDK's retries included): the pipeline
    // answers by itself, the deadline is never reached.
    assert!(
        !serve.stderr().contains("response deadline reached"),
        "{}",
        serve.stderr()
    );
    assert!(answer.3 < DEADLINE, "{:?}", answer.3);
}

/// A process holding the embedded store's database in an exclusive transaction, released when
/// dropped: every write of `zofhook serve` waits on it.
struct Locked(std::process::Child);

impl Locked {
    fn hold(dir: &std::path::Path) -> Locked {
        use std::io::BufRead;
        let mut child = std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3,sys,time\n\
                 db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n\
                 db.execute('BEGIN EXCLUSIVE')\n\
                 print('locked', flush=True)\n\
                 sys.stdin.read()",
            ])
            .arg(dir.join("zofhook.db"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let first = std::io::BufReader::new(stdout).lines().next();
        assert!(
            matches!(first, Some(Ok(ref l)) if l == "locked"),
            "{first:?}"
        );
        Locked(child)
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // Closing its stdin ends the transaction and the process.
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn every_write_hung_on_the_embedded_store_is_answered_503_inside_zofs_limit_and_recovers() {
    let dir = data_dir();
    let serve = Serve::start(&["--data-dir", dir.to_str().unwrap()], &[], &[]);
    let locked = Locked::hold(&dir);
    let answer = deliver(&serve, &dir, "evt_locked").await;
    assert_unavailable(
        "the database held by another process, defaults",
        &answer,
        &serve,
    );
    drop(locked);
    // Zof retries; once the database is free the event is recorded and processed.
    let started = Instant::now();
    loop {
        let (status, reply, _, _) = deliver(&serve, &dir, "evt_locked").await;
        if status == 200 {
            let verdict = reply["status"].as_str().unwrap_or_default().to_string();
            assert!(verdict == "accepted" || verdict == "duplicate", "{reply}");
            break;
        }
        assert_eq!(status, 503, "{reply}");
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no 2xx after the lock was released; last answer {reply}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    e2e::wait_processed(
        &dir,
        &["evt_locked".to_string()].into(),
        Duration::from_secs(60),
    );
}

/// An operator's command is not bound by Zof's 10 s: `events list` against a table whose query
/// answers after 5 s (a busy table, a long page) waits for it, where `serve`'s `StoreTimeoutMs`
/// (2 s) would have given up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_events_list_waits_for_a_slow_table() {
    use e2e::fault::{Fault, FaultProxy, Rule};
    let sdk = e2e::sdk().await;
    let (client, table) = e2e::create_table(&sdk).await;
    let ledger = zofhook_core::ledger::dynamodb::DynamoLedger::new(client, table.clone());
    let body = String::from_utf8(event("evt_slow_table", "org_a", "run_1")).unwrap();
    let record = e2e::failed_record("evt_slow_table", &body, "run_1", "down");
    zofhook_core::ledger::Ledger::begin(&ledger, &record, zofhook_core::now_ms())
        .await
        .unwrap();
    let proxy = FaultProxy::new(&e2e::endpoint());
    proxy.rule(Rule {
        operation: "Query",
        body_contains: None,
        fault: Fault::Slow(Duration::from_secs(5)),
        times: usize::MAX,
    });
    let endpoint = proxy.start().await;
    let env = aws_env_at(&endpoint);
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        let args = [
            "--aws",
            "--table-name",
            table.as_str(),
            "events",
            "list",
            "--since",
            "1h",
            "--json",
        ];
        e2e::zofhook(&args, &env)
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("evt_slow_table"), "{out}");
    assert!(proxy.applied().contains(&"Query".to_string()));
}
