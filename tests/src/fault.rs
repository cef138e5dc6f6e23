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
use std::time::{Duration, Instant};

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
    /// Forwarded at once, its answer held until a call of this operation has arrived (at most
    /// the given time): proves that the client made the two calls at once, not one after the
    /// other, however busy the machine.
    AnswerAfter(&'static str, Duration),
    /// Held before it is forwarded until [`FaultProxy::release`] (at most a minute): a call
    /// that lands exactly when the test says.
    Held,
    /// Forwarded with its `:now` (epoch ms) and `:now_s` (epoch s) condition values moved this
    /// far ahead: the call of a process whose clock runs ahead (another Lambda host's).
    ClockAhead(Duration),
}

/// One call the proxy forwarded: its operation and when it arrived and was answered.
#[derive(Clone, Debug)]
pub struct Call {
    pub operation: String,
    pub body: String,
    pub arrived: Instant,
    pub answered: Option<Instant>,
}

/// The longest chain of calls in which each arrived after the one before was answered: the
/// sequential round trips the client waited for.
pub fn sequential_round_trips(calls: &[Call]) -> usize {
    let mut depth = vec![0usize; calls.len()];
    let mut order: Vec<usize> = (0..calls.len()).collect();
    order.sort_by_key(|&i| calls[i].arrived);
    for &i in &order {
        let before = order
            .iter()
            .filter(|&&j| calls[j].answered.is_some_and(|a| a <= calls[i].arrived))
            .map(|&j| depth[j])
            .max()
            .unwrap_or(0);
        depth[i] = before + 1;
    }
    depth.into_iter().max().unwrap_or(0)
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
    /// Every call, in the order they arrived.
    calls: Arc<Mutex<Vec<Call>>>,
    arrivals: Arc<tokio::sync::Notify>,
    released: Arc<std::sync::atomic::AtomicBool>,
    releases: Arc<tokio::sync::Notify>,
    client: reqwest::Client,
}

impl FaultProxy {
    pub fn new(upstream: &str) -> FaultProxy {
        FaultProxy {
            upstream: upstream.trim_end_matches('/').to_string(),
            rules: Arc::default(),
            applied: Arc::default(),
            calls: Arc::default(),
            arrivals: Arc::default(),
            released: Arc::default(),
            releases: Arc::default(),
            client: reqwest::Client::new(),
        }
    }

    pub fn rule(&self, rule: Rule) {
        self.rules.lock().unwrap().push(rule);
    }

    /// Lets every [`Fault::Held`] call go, now and from now on.
    pub fn release(&self) {
        self.released
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.releases.notify_waiters();
    }

    /// Drops every rule: from now on every call is forwarded as it is.
    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// Every call since the last `take_calls`, in the order they arrived, left in place.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Every call so far, in the order they arrived; the next call starts a new list.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    fn arrived(&self, operation: &str) -> bool {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.operation == operation)
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

/// `body` (a DynamoDB request) with its `:now` and `:now_s` values moved `ahead`.
fn clock_ahead(body: &Bytes, ahead: Duration) -> Bytes {
    let Ok(mut request) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.clone();
    };
    let ahead_ms = i64::try_from(ahead.as_millis()).unwrap_or(0);
    for (key, by) in [(":now", ahead_ms), (":now_s", ahead_ms / 1000)] {
        let value = &mut request["ExpressionAttributeValues"][key]["N"];
        if let Some(now) = value.as_str().and_then(|n| n.parse::<i64>().ok()) {
            *value = serde_json::Value::String((now + by).to_string());
        }
    }
    Bytes::from(request.to_string())
}

async fn forward(
    State(proxy): State<FaultProxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = proxy.pick(&headers, &body);
    let operation = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("")
        .to_string();
    let index = {
        let mut calls = proxy.calls.lock().unwrap();
        calls.push(Call {
            operation,
            body: String::from_utf8_lossy(&body).into_owned(),
            arrived: Instant::now(),
            answered: None,
        });
        calls.len() - 1
    };
    proxy.arrivals.notify_waiters();
    if fault == Some(Fault::Fail) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "injected failure").into_response();
    }
    if let Some(Fault::Slow(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    if fault == Some(Fault::Held) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let released = proxy.releases.notified();
            if proxy.released.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                break;
            }
        }
    }
    let body = match fault {
        Some(Fault::ClockAhead(ahead)) => clock_ahead(&body, ahead),
        _ => body,
    };
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
    if let Some(Fault::AnswerAfter(other, at_most)) = fault {
        let deadline = tokio::time::Instant::now() + at_most;
        loop {
            let notified = proxy.arrivals.notified();
            if proxy.arrived(other) {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
    }
    if let Some(call) = proxy.calls.lock().unwrap().get_mut(index) {
        call.answered = Some(Instant::now());
    }
    let mut response = (status, bytes).into_response();
    for (name, value) in &upstream_headers {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}
