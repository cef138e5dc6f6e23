//! A small Lambda Runtime API (the protocol a `provided.al2023` bootstrap speaks to Lambda), so
//! the real `receiver` and `worker` binaries run here exactly as they would in AWS.
//!
//! `Function::start` spawns the binary with `AWS_LAMBDA_RUNTIME_API` pointing at this server;
//! `invoke` queues an event, waits for the binary's response or error, and returns it.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path as FsPath;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch, Mutex};

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Result<Value, Value>>>>>;

#[derive(Clone)]
struct Api {
    next: Arc<Mutex<mpsc::Receiver<(String, Value)>>>,
    pending: Pending,
    init_error: Arc<Mutex<Option<Value>>>,
    /// When the function first asked for an event: the end of its init phase.
    ready: Arc<watch::Sender<Option<Instant>>>,
}

/// A running function: the runtime API server and the binary's process.
pub struct Function {
    events: mpsc::Sender<(String, Value)>,
    pending: Pending,
    init_error: Arc<Mutex<Option<Value>>>,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    counter: AtomicUsize,
    started: Instant,
    ready: watch::Receiver<Option<Instant>>,
}

impl Function {
    /// Starts `binary` with `env` (plus the Lambda runtime variables) against a fresh runtime API.
    pub async fn start(binary: &FsPath, name: &str, env: &[(String, String)]) -> Function {
        Function::start_command(binary, &[], name, env).await
    }

    /// Like [`Function::start`] for any runtime's bootstrap command (`python -m awslambdaric …`).
    pub async fn start_command(
        program: &FsPath,
        args: &[&str],
        name: &str,
        env: &[(String, String)],
    ) -> Function {
        let (events, next) = mpsc::channel(64);
        let (ready_tx, ready) = watch::channel(None);
        let pending: Pending = Arc::default();
        let init_error = Arc::new(Mutex::new(None));
        let api = Api {
            next: Arc::new(Mutex::new(next)),
            pending: pending.clone(),
            init_error: init_error.clone(),
            ready: Arc::new(ready_tx),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_event))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_failed))
            .with_state(api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = command.spawn().expect("spawn the function binary");
        let logs = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = logs.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    logs.lock().await.push(line);
                }
            });
        }
        Function {
            events,
            pending,
            init_error,
            child,
            logs,
            counter: AtomicUsize::new(0),
            started,
            ready,
        }
    }

    /// Waits (up to 60 s) for the function's first request for an event, and returns the time
    /// from spawning it: its init phase (cold start). `None` if it reported an init error instead.
    pub async fn ready(&self) -> Option<Duration> {
        let mut ready = self.ready.clone();
        let failed = async {
            while self.init_error.lock().await.is_none() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            at = tokio::time::timeout(Duration::from_secs(60), ready.wait_for(Option::is_some)) => {
                let at = *at.ok()?.ok()?;
                at.map(|at| at - self.started)
            }
            () = failed => None,
        }
    }

    /// The process id (for reading its memory use in /proc).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends one event and waits (up to 30 s) for the function's answer: `Ok(response)` or
    /// `Err(error payload)`.
    pub async fn invoke(&self, payload: Value) -> Result<Value, Value> {
        let id = format!("req-{}", self.counter.fetch_add(1, Ordering::SeqCst));
        let (tx, rx) = oneshot::channel();
        self.pending.lock().await.insert(id.clone(), tx);
        self.events.send((id, payload)).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(result)) => result,
            _ => panic!(
                "no answer from the function; init error: {:?}; logs:\n{}",
                self.init_error.lock().await,
                self.logs().await.join("\n")
            ),
        }
    }

    /// Waits for the process to exit (a failed cold start) and returns its init error, if any.
    pub async fn exit(mut self) -> (Option<i32>, Option<Value>, Vec<String>) {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the function did not exit")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let init = self.init_error.lock().await.clone();
        (status.code(), init, self.logs().await)
    }

    /// Everything the function printed so far.
    pub async fn logs(&self) -> Vec<String> {
        self.logs.lock().await.clone()
    }
}

async fn next_event(State(api): State<Api>) -> impl IntoResponse {
    let now = Instant::now();
    api.ready
        .send_if_modified(|ready| ready.is_none() && ready.replace(now).is_none());
    let Some((id, payload)) = api.next.lock().await.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), String::new());
    };
    let deadline = zofhook_core::now_ms() + 10_000;
    let mut headers = HeaderMap::new();
    headers.insert(
        "lambda-runtime-aws-request-id",
        HeaderValue::from_str(&id).unwrap(),
    );
    headers.insert(
        "lambda-runtime-deadline-ms",
        HeaderValue::from_str(&deadline.to_string()).unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:test"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static("Root=1-test"),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    (StatusCode::OK, headers, payload.to_string())
}

async fn settle(api: &Api, id: &str, result: Result<Value, Value>) -> StatusCode {
    match api.pending.lock().await.remove(id) {
        Some(tx) => {
            let _ = tx.send(result);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

fn json_or_text(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(State(api): State<Api>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    settle(&api, &id, Ok(json_or_text(&body))).await
}

async fn error(State(api): State<Api>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    settle(&api, &id, Err(json_or_text(&body))).await
}

async fn init_failed(State(api): State<Api>, body: Bytes) -> StatusCode {
    *api.init_error.lock().await = Some(json_or_text(&body));
    StatusCode::ACCEPTED
}

/// An API Gateway HTTP API (payload format 2.0) request.
pub fn http_api(method: &str, headers: Value, body: &str, base64: bool) -> Value {
    serde_json::json!({
        "version": "2.0", "routeKey": "POST /webhook", "rawPath": "/webhook", "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123", "requestId": "r1", "routeKey": "POST /webhook", "stage": "$default",
            "time": "20/May/2026:12:00:00 +0000", "timeEpoch": 1779278400000u64,
            "http": {"method": method, "path": "/webhook", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "Zof-Webhooks/1.0"}
        },
        "body": body, "isBase64Encoded": base64
    })
}
