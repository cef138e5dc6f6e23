//! `zofhook --aws listen --forward-to URL` on the emulator (docs/design.md section 11): events
//! accepted by `serve --aws` after the start reach a local handler with their original bodies,
//! signed with the local secret; an event from before the start is not forwarded; a handler that
//! is down for a while loses nothing that arrives after it is back, and `listen` names what it
//! missed; `--type` and `--status`; and `listen` calls only DynamoDB's reads.

use axum::body::Bytes;
use axum::http::HeaderMap;
use e2e::fault::FaultProxy;
use e2e::load::{post, secret_in};
use e2e::{binary, data_dir, event, ledger_record, Serve};
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zofhook_core::ledger::{Record, Status};
use zofhook_core::signature::{Scheme, Secrets, Verifier};

/// The local secret `listen` signs with: not the one `serve` (the "deployed" receiver) holds.
const LOCAL_SECRET: &str = "whsec_bG9jYWwtaGFuZGxlci1zZWNyZXQtZm9yLWxpc3Rlbg==";

/// How long an event may take to reach the handler on a busy machine (the poll is 1 s).
const PATIENCE: Duration = Duration::from_secs(90);

/// The local handler: every request's headers and exact body bytes, in order; stopped and
/// started again on the same port to stand for a handler that is down.
#[derive(Clone, Default)]
struct Handler {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

impl Handler {
    async fn start_on(&self, addr: SocketAddr) -> tokio::task::JoinHandle<()> {
        let got = self.got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let got = got.clone();
                async move {
                    got.lock().unwrap().push((headers, body));
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        })
    }

    fn bodies(&self) -> Vec<Vec<u8>> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.to_vec())
            .collect()
    }

    async fn wait_for(&self, count: usize) {
        let started = Instant::now();
        while self.bodies().len() < count {
            assert!(
                started.elapsed() < PATIENCE,
                "the handler got {} of {count} events",
                self.bodies().len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A free port on 127.0.0.1, nothing listening on it once returned.
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A running `zofhook listen` and its stdout, line by line.
struct Listen {
    _dir: e2e::DataDir,
    child: Child,
    lines: Receiver<String>,
    out: Vec<String>,
}

impl Listen {
    fn start(table: &str, args: &[&str], env: &[(&str, String)]) -> Listen {
        let dir = data_dir();
        let mut child = Command::new(binary("zofhook"))
            .args([
                "--data-dir",
                dir.to_str().unwrap(),
                "--secret",
                LOCAL_SECRET,
            ])
            .args(["--aws", "--table-name", table, "listen"])
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let mut listen = Listen {
            _dir: dir,
            child,
            lines,
            out: Vec::new(),
        };
        listen.wait_line(|l| l.starts_with("Forwarding events accepted from"));
        listen
    }

    /// Reads lines until one matches `wanted`; returns it.
    fn wait_line(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let left = PATIENCE.saturating_sub(started.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.out.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no such line from listen; it printed {:#?}", self.out),
            }
        }
    }

    /// SIGINT, then the exit code and the rest of stdout.
    fn interrupt(mut self) -> (i32, Vec<String>) {
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        self.out.extend(self.lines.try_iter());
        (status.code().unwrap_or(-1), std::mem::take(&mut self.out))
    }
}

impl Drop for Listen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The "deployed" receiver: `serve --aws` on a fresh table and queue of the emulator, with its
/// own secret (Zof's).
struct Deployed {
    _dir: e2e::DataDir,
    serve: Serve,
    secret: String,
    table: String,
    env: Vec<(&'static str, String)>,
}

impl Deployed {
    async fn start() -> Deployed {
        let sdk = e2e::sdk().await;
        let (_, table) = e2e::create_table(&sdk).await;
        let (_, queue_url) = e2e::create_queue(&sdk).await;
        let env = e2e::aws_env();
        let dir = data_dir();
        let serve = Serve::start_aws(&dir, &table, &queue_url, &[], &env);
        let secret = secret_in(&dir);
        Deployed {
            _dir: dir,
            serve,
            secret,
            table,
            env,
        }
    }
}

/// Writes `record` into the table as the stack's functions would have left it.
async fn put(dynamodb: &aws_sdk_dynamodb::Client, table: &str, record: &Record) {
    dynamodb
        .put_item()
        .table_name(table)
        .set_item(Some(zofhook_core::ledger::dynamodb::to_item(record)))
        .send()
        .await
        .unwrap();
}

fn verifies_with_local_secret(headers: &HeaderMap, body: &[u8]) -> bool {
    Verifier::new(
        Scheme::HmacSha256,
        http::HeaderName::from_static("zof-signature"),
        300,
    )
    .verify(
        &Secrets::parse(LOCAL_SECRET, None).unwrap(),
        headers,
        body,
        e2e::now_s(),
    )
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_accepted_after_the_start_reach_the_handler_as_zof_sent_them() {
    let stack = Deployed::start().await;
    let (serve, secret, table, env) = (&stack.serve, &stack.secret, &stack.table, &stack.env);
    let client = reqwest::Client::new();
    let before = event("evt_listen_before", "org_a", "run_0");
    assert_eq!(post(&client, &serve.url, secret, &before).await.0, 200);

    // `listen` reaches the emulator through a proxy that records every call it makes.
    let proxy = FaultProxy::new(&e2e::endpoint());
    let proxied = proxy.start().await;
    let mut listen_env = env.clone();
    listen_env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    listen_env.push(("AWS_ENDPOINT_URL", proxied));
    let handler = Handler::default();
    let addr = free_addr();
    let _server = handler.start_on(addr).await;
    let url = format!("http://{addr}/hook");
    let mut listen = Listen::start(table, &["--forward-to", &url], &listen_env);

    let bodies: Vec<Vec<u8>> = (1..=3)
        .map(|i| event(&format!("evt_listen_{i}"), "org_a", &format!("run_{i}")))
        .collect();
    for body in &bodies {
        assert_eq!(post(&client, &serve.url, secret, body).await.0, 200);
    }
    // A duplicate delivery is one event: forwarded once.
    assert_eq!(post(&client, &serve.url, secret, &bodies[0]).await.0, 200);
    handler.wait_for(3).await;
    for i in 1..=3 {
        let line = listen.wait_line(|l| l.starts_with(&format!("evt_listen_{i} ")));
        let shape = regex_lite(&line, &format!("evt_listen_{i} run.completed → 200 in "));
        assert!(shape, "{line}");
    }
    let (code, out) = listen.interrupt();
    assert_eq!(code, 0, "{out:#?}");
    assert_eq!(
        out.last().map(String::as_str),
        Some("Stopped: 3 event(s) forwarded"),
        "{out:#?}"
    );
    // In the order they were accepted, byte for byte, none from before the start, each signed
    // with the local secret (and not with the deployed one).
    assert_eq!(handler.bodies(), bodies);
    for (headers, body) in handler.got.lock().unwrap().iter() {
        assert!(verifies_with_local_secret(headers, body), "{headers:?}");
    }
    assert!(
        !out.iter().any(|l| l.contains("evt_listen_before")),
        "{out:#?}"
    );
    // Reads alone: the time index and the records, nothing that writes.
    let operations: std::collections::BTreeSet<String> =
        proxy.calls().into_iter().map(|c| c.operation).collect();
    assert!(operations.contains("Query"), "{operations:?}");
    assert!(operations.contains("GetItem"), "{operations:?}");
    assert!(
        operations.iter().all(|o| o == "Query" || o == "GetItem"),
        "{operations:?}"
    );
}

/// `line` is `prefix` followed by a number of milliseconds and ` ms`.
fn regex_lite(line: &str, prefix: &str) -> bool {
    line.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(" ms"))
        .is_some_and(|n| n.parse::<u64>().is_ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_is_down_loses_nothing_after_it_is_back_and_listen_names_what_it_missed() {
    let stack = Deployed::start().await;
    let (serve, secret, table, env) = (&stack.serve, &stack.secret, &stack.table, &stack.env);
    let client = reqwest::Client::new();
    let handler = Handler::default();
    let addr = free_addr();
    let server = handler.start_on(addr).await;
    let url = format!("http://{addr}/hook");
    let mut listen = Listen::start(table, &["--forward-to", &url], env);
    let body = |i: u32| event(&format!("evt_down_{i}"), "org_a", &format!("run_{i}"));

    assert_eq!(post(&client, &serve.url, secret, &body(1)).await.0, 200);
    handler.wait_for(1).await;
    // The handler goes down: nothing listens on its port.
    server.abort();
    let _ = server.await;
    for i in [2, 3] {
        assert_eq!(post(&client, &serve.url, secret, &body(i)).await.0, 200);
        let line = listen.wait_line(|l| l.starts_with(&format!("evt_down_{i} ")));
        assert!(
            line.starts_with(&format!("evt_down_{i} run.completed → not delivered: "))
                && line.to_lowercase().contains("connection refused"),
            "{line}"
        );
    }
    // Back on the same port: what arrives now is forwarded, and listen says what it missed.
    let _server = handler.start_on(addr).await;
    for i in [4, 5] {
        assert_eq!(post(&client, &serve.url, secret, &body(i)).await.0, 200);
    }
    handler.wait_for(3).await;
    let missed = listen.wait_line(|l| l.starts_with("the handler answers again"));
    assert_eq!(
        missed,
        "the handler answers again; it missed 2 event(s) while it did not: evt_down_2, evt_down_3"
    );
    listen.wait_line(|l| l.starts_with("evt_down_5 run.completed → 200 in "));
    let (code, out) = listen.interrupt();
    assert_eq!(code, 0);
    assert_eq!(
        out.last().map(String::as_str),
        Some("Stopped: 3 event(s) forwarded; 2 not delivered (the handler did not answer)"),
        "{out:#?}"
    );
    assert_eq!(handler.bodies(), vec![body(1), body(4), body(5)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_and_status_pick_the_events_and_a_status_is_waited_for() {
    let sdk = e2e::sdk().await;
    let (dynamodb, table) = e2e::create_table(&sdk).await;
    let env = e2e::aws_env();
    let handler = Handler::default();
    let addr = free_addr();
    let _server = handler.start_on(addr).await;
    let url = format!("http://{addr}/hook");
    let mut failed_only =
        Listen::start(&table, &["--forward-to", &url, "--status", "failed"], &env);
    let mut other_type = Listen::start(
        &table,
        &["--forward-to", &url, "--type", "run.started"],
        &env,
    );
    let now = || zofhook_core::rfc3339(zofhook_core::now_ms());
    let record = |id: &str, kind: &str, status: Status| {
        let mut r = ledger_record(id, &now(), status);
        r.kind = kind.into();
        r.body = Some(format!(r#"{{"id":"{id}","type":"{kind}"}}"#));
        r
    };
    // Processed: neither; still received (its delivery in flight): not yet accepted.
    put(
        &dynamodb,
        &table,
        &record("evt_pick_done", "run.completed", Status::Processed),
    )
    .await;
    let mut retried = record("evt_pick_retried", "run.completed", Status::Processing);
    put(&dynamodb, &table, &retried).await;
    let started = record("evt_pick_started", "run.started", Status::Received);
    put(&dynamodb, &table, &started).await;
    // The worker gives up on one; the other's delivery finishes. Neither was forwarded before:
    // a processing record is not failed, and a received one is not accepted yet.
    retried.status = Status::Failed;
    put(&dynamodb, &table, &retried).await;
    let mut started = started;
    started.status = Status::Enqueued;
    put(&dynamodb, &table, &started).await;
    failed_only.wait_line(|l| l.starts_with("evt_pick_retried run.completed → 200 in "));
    other_type.wait_line(|l| l.starts_with("evt_pick_started run.started → 200 in "));
    handler.wait_for(2).await;
    let (_, failed_out) = failed_only.interrupt();
    let (_, other_out) = other_type.interrupt();
    assert!(
        !failed_out
            .iter()
            .any(|l| l.contains("evt_pick_done") || l.contains("evt_pick_started")),
        "{failed_out:#?}"
    );
    assert!(
        !other_out
            .iter()
            .any(|l| l.contains("evt_pick_done") || l.contains("evt_pick_retried")),
        "{other_out:#?}"
    );
    assert_eq!(handler.bodies().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_forwards_a_replay_of_an_event_from_before_the_start() {
    let sdk = e2e::sdk().await;
    let (dynamodb, table) = e2e::create_table(&sdk).await;
    let (_, queue_url) = e2e::create_queue(&sdk).await;
    let env = e2e::aws_env();
    // Processed an hour ago, long before either listen started.
    let body = String::from_utf8(event("evt_old", "org_a", "run_old")).unwrap();
    let mut old = e2e::failed_record("evt_old", &body, "run_old", "-");
    old.status = Status::Processed;
    old.error = None;
    old.received_at = zofhook_core::rfc3339(zofhook_core::now_ms() - 3_600_000);
    put(&dynamodb, &table, &old).await;
    let handler = Handler::default();
    let addr = free_addr();
    let _server = handler.start_on(addr).await;
    let url = format!("http://{addr}/hook");
    let mut with = Listen::start(&table, &["--forward-to", &url, "--replayed"], &env);
    let mut without = Listen::start(&table, &["--forward-to", &url], &env);
    let operator = [
        "--aws",
        "--table-name",
        &table,
        "--queue-url",
        &queue_url,
        "replay",
        "evt_old",
    ];
    let (code, out, err) = e2e::zofhook(&operator, &env);
    assert_eq!((code, out.trim()), (0, "replayed 1 event(s)"), "{err}");
    with.wait_line(|l| l.starts_with("evt_old run.completed (replay 1) → 200 in "));
    // A new event after the replay: the listener without --replayed forwards it and nothing
    // before it.
    let mut fresh = e2e::ledger_record(
        "evt_new",
        &zofhook_core::rfc3339(zofhook_core::now_ms()),
        Status::Enqueued,
    );
    fresh.body = Some(String::from_utf8(event("evt_new", "org_a", "run_new")).unwrap());
    put(&dynamodb, &table, &fresh).await;
    without.wait_line(|l| l.starts_with("evt_new run.completed → 200 in "));
    with.wait_line(|l| l.starts_with("evt_new run.completed → 200 in "));
    let (_, without_out) = without.interrupt();
    let (_, with_out) = with.interrupt();
    assert!(
        !without_out.iter().any(|l| l.contains("evt_old")),
        "{without_out:#?}"
    );
    assert_eq!(
        with_out.last().map(String::as_str),
        Some("Stopped: 2 event(s) forwarded")
    );
    // The replay went out with the archived body, signed with the local secret.
    let got = handler.got.lock().unwrap().clone();
    let replays: Vec<&(HeaderMap, Bytes)> = got
        .iter()
        .filter(|(_, b)| b.as_ref() == body.as_bytes())
        .collect();
    assert_eq!(replays.len(), 1);
    assert!(verifies_with_local_secret(&replays[0].0, &replays[0].1));
}
