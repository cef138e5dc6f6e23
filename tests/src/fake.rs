//! A scripted HTTP server on 127.0.0.1 standing in for the Zof API and a notify endpoint:
//! each path answers from its script, then from its default, and every request is recorded.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One scripted answer: status, headers, body, and a delay before answering.
#[derive(Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
    pub delay: Duration,
}

pub fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body,
        delay: Duration::ZERO,
    }
}

#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    pub at: Instant,
}

#[derive(Clone, Default)]
pub struct Fake {
    scripts: Arc<Mutex<HashMap<String, VecDeque<Answer>>>>,
    defaults: Arc<Mutex<HashMap<String, Answer>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    /// Answers `path` with `answers` in order, then with `default` for ever.
    pub fn script(&self, path: &str, answers: Vec<Answer>, default: Answer) {
        self.scripts
            .lock()
            .unwrap()
            .insert(path.into(), answers.into());
        self.defaults.lock().unwrap().insert(path.into(), default);
    }

    pub fn seen(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }

    pub async fn start(&self) -> String {
        let app = Router::new().fallback(handler).with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }
}

async fn handler(
    State(fake): State<Fake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    fake.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: path.clone(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at: Instant::now(),
    });
    let next = {
        let mut scripts = fake.scripts.lock().unwrap();
        scripts.get_mut(&path).and_then(|q| q.pop_front())
    };
    let a = next
        .or_else(|| fake.defaults.lock().unwrap().get(&path).cloned())
        .unwrap_or(answer(404, json!({"error": "not found"})));
    tokio::time::sleep(a.delay).await;
    let mut response =
        (StatusCode::from_u16(a.status).unwrap(), a.body.to_string()).into_response();
    for (k, v) in a.headers {
        response.headers_mut().insert(k, v.parse().unwrap());
    }
    response
}
