//! A fault proxy between the AWS SDK clients and the emulator, on 127.0.0.1: it forwards every
//! call, and for the calls a rule picks (by `X-Amz-Target` and a piece of the request body) it
//! makes the outcome ambiguous the way a slow network does, so the timing is injected rather
//! than hoped for on a busy machine.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What happens to a picked call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forwarded at once (the write lands), its answer withheld this long: past the client's
    /// attempt timeout, so the client sees a timeout for a write that happened.
    Withhold(Duration),
    /// Held this long before it is forwarded: the write lands late, after the client gave up on
    /// that attempt and possibly after its retry.
    Slow(Duration),
    /// Not forwarded: answered 500 at once (a call that really failed).
    Fail,
}

/// Picks calls: the `X-Amz-Target` operation (e.g. `PutItem`, `SendMessage`) and, if given, a
/// piece of text the request body must contain; applies `fault` to the first `times` of them.
#[derive(Clone, Debug)]
pub struct Rule {
    pub operation: &'static str,
    pub body_contains: Option<&'static str>,
    pub fault: Fault,
    pub times: usize,
}

#[derive(Clone)]
pub struct FaultProxy {
    upstream: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    /// The operations the proxy applied a fault to, in order.
    applied: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
}

impl FaultProxy {
    pub fn new(upstream: &str) -> FaultProxy {
        FaultProxy {
            upstream: upstream.trim_end_matches('/').to_string(),
            rules: Arc::default(),
            applied: Arc::default(),
            client: reqwest::Client::new(),
        }
    }

    pub fn rule(&self, rule: Rule) {
        self.rules.lock().unwrap().push(rule);
    }

    /// Drops every rule: from now on every call is forwarded as it is.
    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// The operations a fault was applied to so far.
    pub fn applied(&self) -> Vec<String> {
        self.applied.lock().unwrap().clone()
    }

    /// Serves on a free 127.0.0.1 port; returns its base URL.
    pub async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(forward).with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    }

    fn pick(&self, headers: &HeaderMap, body: &[u8]) -> Option<Fault> {
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let operation = target.rsplit('.').next().unwrap_or("");
        let text = String::from_utf8_lossy(body);
        let mut rules = self.rules.lock().unwrap();
        let rule = rules.iter_mut().find(|r| {
            r.times > 0
                && r.operation == operation
                && r.body_contains.is_none_or(|piece| text.contains(piece))
        })?;
        rule.times -= 1;
        self.applied.lock().unwrap().push(operation.to_string());
        Some(rule.fault)
    }
}

async fn forward(
    State(proxy): State<FaultProxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = proxy.pick(&headers, &body);
    if fault == Some(Fault::Fail) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "injected failure").into_response();
    }
    if let Some(Fault::Slow(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut request = proxy
        .client
        .request(method, format!("{}{path}", proxy.upstream))
        .body(body);
    for (name, value) in &headers {
        // The signature covers `host`, but the emulator does not check signatures.
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    // Forwarded in its own task: a client that gives up does not cancel a write in flight.
    let sent = tokio::spawn(async move {
        let upstream = request.send().await?;
        let status = upstream.status();
        let headers = upstream.headers().clone();
        let bytes = upstream.bytes().await?;
        Ok::<_, reqwest::Error>((status, headers, bytes))
    })
    .await;
    let Ok(Ok((status, upstream_headers, bytes))) = sent else {
        return (StatusCode::BAD_GATEWAY, "emulator unreachable").into_response();
    };
    if let Some(Fault::Withhold(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    let mut response = (status, bytes).into_response();
    for (name, value) in &upstream_headers {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}
