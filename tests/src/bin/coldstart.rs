//! Cold start, side by side (make bench, issue 7): each contender is started fresh against the
//! Lambda Runtime API harness and the AWS API emulator, `--runs` times, in alternating order.
//!
//! For each start it records:
//! - `init_ms`: exec to the first request for an event (settings, clients, the secret fetched
//!   from Secrets Manager, the warm-up);
//! - `first_ms`: the first delivery (a new signed `run.completed`), event handed over to answer;
//! - `second_ms`: a second new delivery, on the now warm process;
//! - `rss_mib`: the process's peak resident memory (VmHWM) after both;
//! - `warm_ms`, `warm_cpu_ms`, `warm_log_bytes`: per delivery, over five more warm deliveries:
//!   the wall time, the CPU time the process used (all threads), and what it printed;
//! - `item_bytes`: the DynamoDB size of the record a delivery wrote (DynamoDB's item size
//!   rules), which sets the write units of every write to it.
//!
//! After the runs, the `worker` bootstrap (`--worker BINARY`) processes the receiver's messages
//! in batches of the template's `WorkerBatchSize`: `worker/batch_ms`, `worker/batch_cpu_ms`,
//! `worker/batch_log_bytes` and the processed record's `worker/item_bytes`. make bench prices
//! a million deliveries from these (infra/bench/cost.py).
//!
//! It also times the first and second DynamoDB GetItem of a freshly built SDK client (`tls`),
//! which is what the receiver's init-phase warm-up takes out of the first delivery.
//!
//!   coldstart --runs N --out FILE.json --rust LABEL=BINARY... [--python LABEL=PYTHON,PEER_DIR]
//!             [--worker BINARY]
//!
//! Needs the emulator (`infra/with-emulator.sh`); the figures are printed and written as JSON.

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::lambda::{http_api, Function};
use e2e::template::Template;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use zofhook_core::signature::{Scheme, Secret, Secrets, Verifier};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

enum Kind {
    Rust(PathBuf),
    Python { python: PathBuf, peer: PathBuf },
}

struct Contender {
    label: String,
    kind: Kind,
}

#[derive(Default)]
struct Samples(HashMap<String, Vec<f64>>);

impl Samples {
    fn push(&mut self, key: String, value: f64) {
        self.0.entry(key).or_default().push(value);
    }
}

fn usage(why: &str) -> ! {
    eprintln!(
        "coldstart: {why}\nusage: coldstart --runs N --out FILE --rust LABEL=BINARY... \
         [--python LABEL=PYTHON,PEER_DIR]"
    );
    std::process::exit(2)
}

fn parse_args() -> (usize, PathBuf, Vec<Contender>, Option<PathBuf>) {
    let mut args = std::env::args().skip(1);
    let (mut runs, mut out, mut contenders, mut worker) = (10, None, Vec::new(), None);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let labelled = || {
            value
                .split_once('=')
                .map(|(l, v)| (l.to_string(), v.to_string()))
                .unwrap_or_else(|| usage(&format!("{flag} wants LABEL=…")))
        };
        match flag.as_str() {
            "--runs" => runs = value.parse().unwrap_or_else(|_| usage("--runs N")),
            "--out" => out = Some(PathBuf::from(&value)),
            "--worker" => worker = Some(PathBuf::from(&value)),
            "--rust" => {
                let (label, path) = labelled();
                contenders.push(Contender {
                    label,
                    kind: Kind::Rust(path.into()),
                });
            }
            "--python" => {
                let (label, rest) = labelled();
                let (python, peer) = rest
                    .split_once(',')
                    .unwrap_or_else(|| usage("--python LABEL=PYTHON,PEER_DIR"));
                contenders.push(Contender {
                    label,
                    kind: Kind::Python {
                        python: python.into(),
                        peer: peer.into(),
                    },
                });
            }
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    if contenders.is_empty() {
        usage("nothing to start");
    }
    (
        runs,
        out.unwrap_or_else(|| usage("--out FILE")),
        contenders,
        worker,
    )
}

/// CPU time the process has used so far, all its threads, in ms (`/proc/PID/task/*/schedstat`).
fn cpu_ms(pid: Option<u32>) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", pid?)).ok()?;
    let mut ns = 0u64;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e6)
}

fn log_bytes(lines: &[String]) -> usize {
    lines.iter().map(|l| l.len() + 1).sum()
}

/// An item's size as DynamoDB bills it: attribute names plus values (strings as UTF-8, numbers
/// about one byte per two digits plus one, maps and lists 3 bytes plus their contents, 1 byte
/// per element).
fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.trim_start_matches('-').len().div_ceil(2) + 1,
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::M(m) => {
                3 + m.iter().map(|(k, v)| k.len() + value(v) + 1).sum::<usize>()
            }
            AttributeValue::L(l) => 3 + l.iter().map(|v| value(v) + 1).sum::<usize>(),
            AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
            AttributeValue::Ns(n) => n.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
            _ => 0,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

/// The largest item in `table` (after a run's deliveries: the records they wrote).
async fn largest_item(client: &aws_sdk_dynamodb::Client, table: &str) -> usize {
    let scan = client
        .scan()
        .table_name(table)
        .send()
        .await
        .expect("Scan on the emulator");
    scan.items().iter().map(item_size).max().unwrap_or(0)
}

/// The emulator variables plus the TLS trust settings, which the harness's cleared environment
/// would otherwise drop: `SSL_CERT_FILE` (rustls-native-certs) and `AWS_CA_BUNDLE` (botocore).
fn base_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = e2e::aws_env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    // Lambda sets both region variables; botocore reads only the second.
    env.push(("AWS_DEFAULT_REGION".into(), e2e::REGION.into()));
    // In AWS each service is its own host, so each needs its own connection and TLS handshake.
    // Three names of the one emulator give the same here (the certificate has all three).
    let endpoint = e2e::endpoint();
    if let Some(port) = endpoint
        .strip_prefix("https://127.0.0.1:")
        .map(|p| p.trim_end_matches('/'))
    {
        for (service, host) in [
            ("SECRETS_MANAGER", "127.0.0.1"),
            ("DYNAMODB", "localhost"),
            ("SQS", "[::ffff:127.0.0.1]"),
        ] {
            env.push((
                format!("AWS_ENDPOINT_URL_{service}"),
                format!("https://{host}:{port}"),
            ));
        }
    }
    for name in ["SSL_CERT_FILE", "AWS_CA_BUNDLE"] {
        if let Ok(value) = std::env::var(name) {
            env.push((name.to_string(), value));
        }
    }
    env
}

fn delivery(n: &str) -> Value {
    let body = e2e::event(&format!("evt_cold_{n}"), "org_bench", "run_1");
    let verifier = Verifier::new(
        Scheme::StandardWebhooks,
        http::HeaderName::from_static("zof-signature"),
        300,
    );
    let secret = Secret::parse(SECRET).expect("secret");
    let mut headers = json!({ "content-type": "application/json" });
    for (name, value) in verifier.sign(&secret, &body, e2e::now_s(), &format!("msg_{n}")) {
        headers[name.as_str()] = json!(value);
    }
    let text = String::from_utf8(body).expect("utf-8 event");
    http_api("POST", headers, &text, false)
}

fn peak_rss_mib(pid: Option<u32>) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn accepted(function: &Function, label: &str, event: Value) -> f64 {
    let started = Instant::now();
    let reply = function.invoke(event).await;
    let took = ms(started.elapsed());
    let ok = reply.as_ref().is_ok_and(|r| {
        r["statusCode"] == 200
            && r["body"]
                .as_str()
                .and_then(|b| serde_json::from_str::<Value>(b).ok())
                .is_some_and(|b| b["status"] == "accepted")
    });
    if !ok {
        eprintln!(
            "{label}: the delivery was not accepted: {reply:?}\n{}",
            function.logs().await.join("\n")
        );
        std::process::exit(1);
    }
    took
}

/// First and second GetItem on a client built from a fresh SdkConfig (a new connection pool).
async fn first_requests(table: &str, samples: &mut Samples) {
    let sdk = e2e::sdk().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    for key in ["tls_first_ms", "tls_second_ms"] {
        let started = Instant::now();
        client
            .get_item()
            .table_name(table)
            .key("id", AttributeValue::S("#warm-up".into()))
            .send()
            .await
            .expect("GetItem on the emulator");
        samples.push(key.into(), ms(started.elapsed()));
    }
}

/// The worker bootstrap on the receiver's messages (the records it wrote), in batches of the
/// template's `WorkerBatchSize`, as the event source mapping delivers them.
async fn work(
    binary: &std::path::Path,
    resources: &HashMap<&str, String>,
    table: &str,
    queue_url: &str,
    samples: &mut Samples,
) {
    let template = Template::load();
    let batch_size: usize = template
        .parameter_attr("WorkerBatchSize", "Default")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let sdk = e2e::sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    // Six warm batches' worth of accepted events, recorded and queued by the receive pipeline.
    let config = std::sync::Arc::new(zofhook_core::config::Config::default());
    let receiver = zofhook_core::receive::Receiver::new(
        config.clone(),
        std::sync::Arc::new(zofhook_core::secrets::StaticSecrets::new(
            zofhook_core::signature::Secrets::parse(SECRET, None).expect("secret"),
        )),
        std::sync::Arc::new(zofhook_core::ledger::dynamodb::DynamoLedger::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            table,
        )),
        std::sync::Arc::new(zofhook_core::queue::sqs::SqsQueue::new(
            sqs.clone(),
            queue_url.to_string(),
        )),
        zofhook_core::system_clock(),
    );
    let verifier = Verifier::new(
        config.scheme,
        config.signature_header.clone(),
        config.tolerance_seconds,
    );
    let secret = Secrets::parse(SECRET, None).expect("secret");
    for i in 0..batch_size * 7 {
        let body = e2e::event(&format!("evt_cold_receiver_work_{i}"), "org_bench", "run_1");
        let headers = verifier.sign_headers(&secret.current, &body, e2e::now_s(), "");
        let reply = receiver
            .receive(zofhook_core::receive::Delivery {
                method: &http::Method::POST,
                headers: &headers,
                body: zofhook_core::receive::Body::Raw(&body),
            })
            .await;
        assert_eq!(reply.verdict, zofhook_core::receive::Verdict::Accepted);
    }
    let ours: Vec<String> = e2e::drain(&sqs, queue_url)
        .await
        .iter()
        .filter_map(|m| m.body().map(str::to_string))
        .filter(|b| b.contains("\"evt_cold_receiver_"))
        .collect();
    let mut env = template.function_env("WorkerFunction", resources, &HashMap::new());
    env.extend(base_env());
    let function = Function::start(binary, "worker", &env).await;
    if function.ready().await.is_none() {
        eprintln!(
            "worker: never asked for an event\n{}",
            function.logs().await.join("\n")
        );
        std::process::exit(1);
    }
    let sent = (zofhook_core::now_ms() - 60_000).to_string();
    for (k, batch) in ours.chunks(batch_size).enumerate() {
        let records: Vec<Value> = batch
            .iter()
            .enumerate()
            .map(|(i, body)| {
                json!({"messageId": format!("m{k}_{i}"), "receiptHandle": format!("rh{k}_{i}"),
                       "body": body, "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": sent},
                       "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": e2e::REGION,
                       "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:events"})
            })
            .collect();
        let (cpu_before, logs_before) = (cpu_ms(function.pid()), function.logs().await.len());
        let started = Instant::now();
        let reply = function.invoke(json!({ "Records": records })).await;
        let took = ms(started.elapsed());
        if !reply
            .as_ref()
            .is_ok_and(|r| r["batchItemFailures"] == json!([]))
        {
            eprintln!(
                "worker: a batch failed: {reply:?}\n{}",
                function.logs().await.join("\n")
            );
            std::process::exit(1);
        }
        // The first batch pays the connections' set-up: only full, warm batches count.
        if k == 0 || batch.len() < batch_size {
            continue;
        }
        samples.push("worker/batch_ms".into(), took);
        if let Some((after, before)) = cpu_ms(function.pid()).zip(cpu_before) {
            samples.push("worker/batch_cpu_ms".into(), after - before);
        }
        let logs = function.logs().await;
        samples.push(
            "worker/batch_log_bytes".into(),
            log_bytes(&logs[logs_before.min(logs.len())..]) as f64,
        );
    }
    samples.push("worker/batch_size".into(), batch_size as f64);
    if let Some(rss) = peak_rss_mib(function.pid()) {
        samples.push("worker/rss_mib".into(), rss);
    }
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    samples.push(
        "worker/item_bytes".into(),
        largest_item(&dynamo, table).await as f64,
    );
}

#[tokio::main]
async fn main() {
    let (runs, out, contenders, worker) = parse_args();
    let sdk = e2e::sdk().await;
    let (_, table) = e2e::create_table(&sdk).await;
    let (_, peer_table) = e2e::create_table(&sdk).await;
    let (_, queue_url) = e2e::create_queue(&sdk).await;
    let secret_arn = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(e2e::unique("webhook"))
        .secret_string(format!(r#"{{"current":"{SECRET}","previous":""}}"#))
        .send()
        .await
        .expect("create the secret")
        .arn()
        .expect("an ARN")
        .to_string();
    let resources: HashMap<&str, String> = HashMap::from([
        ("LedgerTable", table.clone()),
        ("EventQueue", queue_url.clone()),
        ("WebhookSecretValue", secret_arn.clone()),
    ]);
    let overrides = HashMap::from([("SignatureScheme", "standard-webhooks".to_string())]);
    let mut rust_env = Template::load().function_env("ReceiverFunction", &resources, &overrides);
    rust_env.extend(base_env());
    let python_env = |peer: &PathBuf| {
        let mut env = base_env();
        for (k, v) in [
            ("SECRET_ARN", secret_arn.clone()),
            ("QUEUE_URL", queue_url.clone()),
            ("IDEMPOTENCY_TABLE", peer_table.clone()),
            ("PYTHONPATH", peer.display().to_string()),
            ("LAMBDA_TASK_ROOT", peer.display().to_string()),
            ("_HANDLER", "app.handler".to_string()),
            ("POWERTOOLS_SERVICE_NAME", "zof-webhooks-peer".to_string()),
        ] {
            env.push((k.to_string(), v));
        }
        env
    };

    let mut samples = Samples::default();
    // Run 0 warms the page cache and Python's bytecode cache; it is not counted.
    for run in 0..=runs {
        let mut order: Vec<&Contender> = contenders.iter().collect();
        if run % 2 == 1 {
            order.reverse();
        }
        for c in order {
            let function = match &c.kind {
                Kind::Rust(binary) => Function::start(binary, &c.label, &rust_env).await,
                Kind::Python { python, peer } => {
                    Function::start_command(
                        python,
                        &["-m", "awslambdaric", "app.handler"],
                        &c.label,
                        &python_env(peer),
                    )
                    .await
                }
            };
            let Some(init) = function.ready().await else {
                eprintln!(
                    "{}: never asked for an event\n{}",
                    c.label,
                    function.logs().await.join("\n")
                );
                std::process::exit(1);
            };
            let n = format!("{}_{run}_{}", c.label, e2e::unique("d"));
            let first = accepted(&function, &c.label, delivery(&format!("{n}_1"))).await;
            let second = accepted(&function, &c.label, delivery(&format!("{n}_2"))).await;
            let rss = peak_rss_mib(function.pid());
            let (cpu_before, logs_before) = (cpu_ms(function.pid()), function.logs().await);
            let warm_started = Instant::now();
            const WARM: usize = 5;
            for k in 0..WARM {
                accepted(&function, &c.label, delivery(&format!("{n}_w{k}"))).await;
            }
            let warm = ms(warm_started.elapsed()) / WARM as f64;
            let warm_cpu = cpu_ms(function.pid())
                .zip(cpu_before)
                .map(|(after, before)| (after - before) / WARM as f64);
            let logs = function.logs().await;
            let warm_logs = log_bytes(&logs[logs_before.len().min(logs.len())..]) / WARM;
            drop(function);
            if run == 0 {
                continue;
            }
            samples.push(format!("{}/warm_ms", c.label), warm);
            if let Some(cpu) = warm_cpu {
                samples.push(format!("{}/warm_cpu_ms", c.label), cpu);
            }
            samples.push(format!("{}/warm_log_bytes", c.label), warm_logs as f64);
            let l = &c.label;
            samples.push(format!("{l}/init_ms"), ms(init));
            samples.push(format!("{l}/first_ms"), first);
            samples.push(format!("{l}/second_ms"), second);
            samples.push(format!("{l}/ready_to_answer_ms"), ms(init) + first);
            if let Some(rss) = rss {
                samples.push(format!("{l}/rss_mib"), rss);
            }
        }
        if run > 0 {
            first_requests(&table, &mut samples).await;
        }
    }
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    samples.push(
        "receiver/item_bytes".into(),
        largest_item(&dynamo, &table).await as f64,
    );
    samples.push(
        "python-powertools/item_bytes".into(),
        largest_item(&dynamo, &peer_table).await as f64,
    );
    if let Some(worker) = worker {
        work(&worker, &resources, &table, &queue_url, &mut samples).await;
    }

    let mut report = serde_json::Map::new();
    let mut keys: Vec<&String> = samples.0.keys().collect();
    keys.sort();
    println!(
        "{:<40} {:>10} {:>10} {:>10}",
        "measure", "median", "p90", "runs"
    );
    for key in keys {
        let mut values = samples.0[key].clone();
        values.sort_by(f64::total_cmp);
        let pick = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        let (median, p90) = (pick(0.5), pick(0.9));
        println!("{key:<40} {median:>10.2} {p90:>10.2} {:>10}", values.len());
        report.insert(
            key.clone(),
            json!({ "median": median, "p90": p90, "samples": values }),
        );
    }
    let text = serde_json::to_string_pretty(&Value::Object(report)).expect("JSON");
    if let Err(e) = std::fs::write(&out, text) {
        eprintln!("coldstart: cannot write {}: {e}", out.display());
        std::process::exit(1);
    }
}
