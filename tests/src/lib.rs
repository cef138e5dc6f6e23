//! Support for the end-to-end tests: clients for the AWS API emulator (moto server on 127.0.0.1,
//! started by `make test`), fresh tables and queues per test, signed events, the built binaries,
//! and a Lambda Runtime API that drives the real `receiver` and `worker` binaries.

pub mod conformance;
pub mod fake;
pub mod fault;
pub mod lambda;
pub mod load;
pub mod template;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use zofhook_core::signature::{Scheme, Secret, Verifier};

pub const ENDPOINT_ENV: &str = "ZOFHOOK_TEST_AWS_ENDPOINT";
pub const REGION: &str = "us-east-1";

/// The emulator's URL. These tests need it: run them with `make test`.
pub fn endpoint() -> String {
    std::env::var(ENDPOINT_ENV).unwrap_or_else(|_| {
        panic!("{ENDPOINT_ENV} is not set: run `make test`, or `infra/with-emulator.sh cargo test`")
    })
}

/// The standard AWS environment for a child process talking to the emulator.
pub fn aws_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint()),
        ("AWS_REGION", REGION.to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
    ]
}

pub async fn sdk() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(Region::new(REGION))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "emulator",
        ))
        .load()
        .await
}

/// A name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A record as a delivery leaves it, `status` aside: type `run.completed`, organization `org_a`,
/// run `run_1`, remembered for a day, with the body `{}`.
pub fn ledger_record(
    id: &str,
    received_at: &str,
    status: zofhook_core::ledger::Status,
) -> zofhook_core::ledger::Record {
    zofhook_core::ledger::Record {
        id: id.into(),
        status,
        kind: "run.completed".into(),
        body_sha256: "00".into(),
        organization_id: Some("org_a".into()),
        run_id: Some("run_1".into()),
        received_at: received_at.into(),
        lease_until: 0,
        lease_token: None,
        delivery_token: None,
        attempts: 0,
        outcome: None,
        error: None,
        processed_at: None,
        expires_at: zofhook_core::now_ms() / 1000 + 86_400,
        body: Some("{}".into()),
        replays: 0,
    }
}

/// A ledger table as template.yaml defines it: partition key `id`, on demand, and the time index
/// (`by_time`: the day's shard and the time key, keys only).
pub async fn create_table(sdk: &SdkConfig) -> (aws_sdk_dynamodb::Client, String) {
    create_table_with(sdk, false).await
}

/// A ledger table; with `legacy`, also the index of the layout before `by_time` (`by_day`,
/// partition key `received_day`), as a stack has it between the
/// two deployments of the upgrade.
pub async fn create_table_with(
    sdk: &SdkConfig,
    legacy: bool,
) -> (aws_sdk_dynamodb::Client, String) {
    use zofhook_core::ledger::dynamodb::{
        LEGACY_DAY_KEY, LEGACY_TIME_INDEX, SHARD_KEY, TIME_INDEX, TIME_KEY,
    };
    let client = aws_sdk_dynamodb::Client::new(sdk);
    let name = unique("ledger");
    let mut attributes = vec!["id", SHARD_KEY, TIME_KEY];
    let mut indexes = vec![GlobalSecondaryIndex::builder()
        .index_name(TIME_INDEX)
        .key_schema(key(SHARD_KEY, KeyType::Hash))
        .key_schema(key(TIME_KEY, KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .unwrap()];
    if legacy {
        attributes.extend([LEGACY_DAY_KEY, "received_at"]);
        indexes.push(
            GlobalSecondaryIndex::builder()
                .index_name(LEGACY_TIME_INDEX)
                .key_schema(key(LEGACY_DAY_KEY, KeyType::Hash))
                .key_schema(key("received_at", KeyType::Range))
                // What it projected does not matter here: nothing reads it any more.
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .unwrap(),
        );
    }
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(
            attributes
                .into_iter()
                .map(|name| {
                    AttributeDefinition::builder()
                        .attribute_name(name)
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .unwrap()
                })
                .collect(),
        ))
        .key_schema(key("id", KeyType::Hash))
        .set_global_secondary_indexes(Some(indexes))
        .send()
        .await
        .expect("create table in the emulator");
    (client, name)
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .unwrap()
}

/// A queue; returns its URL.
pub async fn create_queue(sdk: &SdkConfig) -> (aws_sdk_sqs::Client, String) {
    let client = aws_sdk_sqs::Client::new(sdk);
    let out = client
        .create_queue()
        .queue_name(unique("events"))
        .send()
        .await
        .expect("create queue in the emulator");
    (client, out.queue_url().unwrap().to_string())
}

/// Receives every message now visible on the queue (bodies and receipt handles), deleting none.
pub async fn drain(client: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut all = Vec::new();
    loop {
        let out = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .wait_time_seconds(0)
            .send()
            .await
            .unwrap();
        let messages = out.messages().to_vec();
        if messages.is_empty() {
            return all;
        }
        all.extend(messages);
    }
}

/// A new Secrets Manager secret on the emulator holding `value` (named after `prefix`); its ARN.
pub async fn create_secret(
    client: &aws_sdk_secretsmanager::Client,
    prefix: &str,
    value: &str,
) -> String {
    client
        .create_secret()
        .name(unique(prefix))
        .secret_string(value)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string()
}

/// A `run.completed` envelope as Zof documents it.
pub fn event(id: &str, org: &str, run: &str) -> Vec<u8> {
    json!({"id": id, "type": "run.completed", "created": "2026-05-20T12:00:00Z",
           "data": {"object": {"id": "res_1", "organization_id": org, "run_id": run}}})
    .to_string()
    .into_bytes()
}

/// The default scheme's signature header for `body`.
pub fn sign(secret: &str, body: &[u8]) -> (String, String) {
    let v = Verifier::new(
        Scheme::HmacSha256,
        http::HeaderName::from_static("zof-signature"),
        300,
    );
    let (name, value) = v
        .sign(&Secret::parse(secret).unwrap(), body, now_s(), "")
        .remove(0);
    (name.to_string(), value)
}

pub fn now_s() -> i64 {
    zofhook_core::now_ms() / 1000
}

/// Where `sam build` left the packaged bootstraps; when set, the Lambda tests run those.
pub const LAMBDA_BUILD_DIR_ENV: &str = "ZOFHOOK_LAMBDA_BUILD_DIR";

/// A binary of the workspace, built by `make test` before the tests run; for `receiver` and
/// `worker`, the packaged `bootstrap` from `sam build` when `ZOFHOOK_LAMBDA_BUILD_DIR` is set.
pub fn binary(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var(LAMBDA_BUILD_DIR_ENV) {
        let function = match name {
            "receiver" => Some("ReceiverFunction"),
            "worker" => Some("WorkerFunction"),
            _ => None,
        };
        if let Some(function) = function {
            let path = PathBuf::from(dir).join(function).join("bootstrap");
            assert!(
                path.exists(),
                "{} is missing: run `sam build` first",
                path.display()
            );
            return path;
        }
    }
    // target/debug/deps/<test> -> target/debug/<name>
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.push(name);
    assert!(
        path.exists(),
        "{} is missing: build it first (`cargo build --workspace --bins --features zofhook/aws`, as `make test` does)",
        path.display()
    );
    path
}

/// The workspace root (where template.yaml is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// An emulator of a test's own (`infra/moto-server.py`, as `infra/with-emulator.sh` starts it)
/// on a port of its own choosing, with `env` (`ZOFHOOK_EMULATOR_*`); stopped when dropped.
pub struct Emulator {
    child: std::process::Child,
    pub url: String,
}

impl Emulator {
    pub fn start(env: &[(&str, &str)]) -> Emulator {
        use std::io::BufRead;
        let mut child = std::process::Command::new(root().join(".venv/bin/python"))
            .arg(root().join("infra/moto-server.py"))
            .args(["-H", "127.0.0.1", "-p", "0"])
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the emulator in .venv (make test makes it)");
        let stderr = child.stderr.take().unwrap();
        let mut lines = std::io::BufReader::new(stderr).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.split("Running on ").nth(1) {
                        break rest.trim().to_string();
                    }
                }
                _ => panic!("the emulator printed no address"),
            }
        };
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        Emulator { child, url }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `zofhook serve`, killed when dropped.
pub struct Serve {
    pub child: std::process::Child,
    /// `http://127.0.0.1:<port>/webhook`
    pub url: String,
    /// Everything printed on stdout up to "listening on".
    pub banner: Vec<String>,
    pub stderr_log: PathBuf,
}

impl Serve {
    /// Starts `zofhook <global args> serve --listen 127.0.0.1:0 <args>` and waits until it listens.
    pub fn start(global: &[&str], args: &[&str], env: &[(&str, String)]) -> Serve {
        use std::io::BufRead;
        let stderr_log = std::env::temp_dir().join(format!("{}.log", unique("zofhook-serve")));
        let mut child = std::process::Command::new(binary("zofhook"))
            .args(global)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env_remove("ZOFHOOK_SECRET")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&stderr_log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut banner = Vec::new();
        let url = loop {
            let Some(Ok(line)) = lines.next() else {
                let status = child.wait().unwrap();
                panic!(
                    "zofhook serve exited ({status}) before listening: {banner:?}\n{}",
                    std::fs::read_to_string(&stderr_log).unwrap_or_default()
                );
            };
            banner.push(line.clone());
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.trim().to_string();
            }
        };
        // Read the banner's remaining lines, and keep draining stdout so the server never blocks.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        while let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(300)) {
            let done = line.contains("webhook secret") || line.contains("stopping");
            banner.push(line);
            if done {
                break;
            }
        }
        Serve {
            child,
            url,
            banner,
            stderr_log,
        }
    }

    /// `zofhook --data-dir <dir> --aws --table-name <table> --queue-url <queue> serve <args>`:
    /// `serve --aws` on the emulator's table and queue (`env` names the endpoint).
    pub fn start_aws(
        dir: &std::path::Path,
        table: &str,
        queue_url: &str,
        args: &[&str],
        env: &[(&str, String)],
    ) -> Serve {
        let global = [
            "--data-dir",
            dir.to_str().unwrap(),
            "--aws",
            "--table-name",
            table,
            "--queue-url",
            queue_url,
        ];
        Serve::start(&global, args, env)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Sends SIGTERM (or SIGKILL) and waits for the exit.
    pub fn signal(&mut self, signal: &str) -> std::process::ExitStatus {
        std::process::Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr_log);
    }
}

/// Runs `command` to completion and returns its stdout; a failure fails the test with its stderr.
pub fn stdout_of(command: &mut std::process::Command) -> Vec<u8> {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        command,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `zofhook` to completion: (exit code, stdout, stderr).
pub fn zofhook(args: &[&str], env: &[(&str, String)]) -> (i32, String, String) {
    let out = std::process::Command::new(binary("zofhook"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("ZOFHOOK_SECRET")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh, empty data dir under the system temp dir, removed with its contents when dropped:
/// keep it bound (`let dir = data_dir();`) for as long as anything uses it.
pub struct DataDir(tempfile::TempDir);

impl std::ops::Deref for DataDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl AsRef<std::path::Path> for DataDir {
    fn as_ref(&self) -> &std::path::Path {
        self.0.path()
    }
}

pub fn data_dir() -> DataDir {
    DataDir(
        tempfile::Builder::new()
            .prefix("zofhook-data-")
            .tempdir()
            .unwrap(),
    )
}

/// The default scheme's signature header value for `body`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    sign(secret, body).1
}

/// POSTs `body` to `url` with the default scheme's signature made with `secret`: one delivery.
pub async fn post_signed(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    body: &[u8],
) -> reqwest::Response {
    client
        .post(url)
        .header("zof-signature", signature(secret, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

/// `zofhook send --id <id>` with the data dir's secret and URL, then waits until it is
/// `processed` (`within`).
pub fn send_and_wait_processed(dir: &std::path::Path, id: &str, within: std::time::Duration) {
    let (code, out, err) = zofhook(
        &["--data-dir", dir.to_str().unwrap(), "send", "--id", id],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    wait_processed(dir, &[id.to_string()].into(), within);
}

/// `zofhook events list --json` on a data dir.
pub fn events_json(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let (code, out, err) = zofhook(
        &[
            "--data-dir",
            dir.to_str().unwrap(),
            "events",
            "list",
            "--json",
            "--limit",
            "100000",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// Waits until every id in `ids` is `processed` in the data dir's ledger.
pub fn wait_processed(
    dir: &std::path::Path,
    ids: &std::collections::HashSet<String>,
    within: std::time::Duration,
) {
    let started = std::time::Instant::now();
    loop {
        let processed: std::collections::HashSet<String> = events_json(dir)
            .into_iter()
            .filter(|e| e["status"] == "processed")
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        let missing: Vec<_> = ids.difference(&processed).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < within,
            "not processed: {} of {}: {:?}",
            missing.len(),
            ids.len(),
            &missing[..missing.len().min(5)]
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A `failed` record of `body` (org `org_a`, one attempt, no lease), as a worker that gave up
/// leaves it: what a dead-lettered or replayable event looks like in the ledger.
pub fn failed_record(id: &str, body: &str, run: &str, error: &str) -> zofhook_core::ledger::Record {
    let now = zofhook_core::now_ms();
    zofhook_core::ledger::Record {
        id: id.into(),
        status: zofhook_core::ledger::Status::Failed,
        kind: "run.completed".into(),
        body_sha256: zofhook_core::event::body_sha256(body.as_bytes()),
        organization_id: Some("org_a".into()),
        run_id: Some(run.into()),
        received_at: zofhook_core::rfc3339(now),
        lease_until: 0,
        lease_token: None,
        delivery_token: None,
        attempts: 1,
        outcome: None,
        error: Some(error.into()),
        processed_at: None,
        expires_at: now / 1000 + 3600,
        body: Some(body.to_string()),
        replays: 0,
    }
}
