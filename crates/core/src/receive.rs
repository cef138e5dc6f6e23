//! The receive pipeline (docs/design.md section 3): an HTTP delivery in, a status and JSON body out.
//! No AWS or HTTP-server types: the Lambda and `zofhook serve` adapt their requests to
//! [`Delivery`] and write the [`Reply`] back.
//!
//! Order of checks: method, size, content type, signature (before the body is parsed), envelope,
//! organization, event type, then the ledger and the queue.

use crate::clock::millis;
use crate::clock::Clock;
use crate::config::Config;
use crate::event::{self, Envelope};
use crate::ledger::{Ledger, LedgerError, Record};
use crate::protocol::{Answer, Delivering, DeliveryCall, DeliveryInput};
use crate::queue::{Queue, QueueError};
use crate::secrets::SecretSource;
use crate::signature::{Rejection, Verifier};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use http::{header, HeaderMap, Method};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

/// Seconds Zof is asked to wait before retrying a 503 for an unavailable store.
pub const UNAVAILABLE_RETRY_AFTER: u64 = 5;

/// A request body as the front door delivered it.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    Raw(&'a [u8]),
    /// API Gateway and function URLs may base64-encode the body (`isBase64Encoded`).
    Base64(&'a str),
}

/// One HTTP delivery.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub body: Body<'a>,
}

/// What became of a delivery; one per row of the status table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Duplicate,
    Ignored,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    InvalidSignature,
    InvalidEvent,
    WrongOrganization,
    Conflict,
    InProgress,
    Unavailable,
}

impl Verdict {
    pub fn status(self) -> u16 {
        match self {
            Verdict::Accepted | Verdict::Duplicate | Verdict::Ignored => 200,
            Verdict::InvalidEvent => 400,
            Verdict::InvalidSignature => 401,
            Verdict::WrongOrganization => 403,
            Verdict::MethodNotAllowed => 405,
            Verdict::Conflict => 409,
            Verdict::PayloadTooLarge => 413,
            Verdict::UnsupportedMediaType => 415,
            Verdict::InProgress | Verdict::Unavailable => 503,
        }
    }

    /// The word in the JSON body (`status` for 200s, `error` otherwise).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Duplicate => "duplicate",
            Verdict::Ignored => "ignored",
            Verdict::MethodNotAllowed => "method_not_allowed",
            Verdict::PayloadTooLarge => "payload_too_large",
            Verdict::UnsupportedMediaType => "unsupported_media_type",
            Verdict::InvalidSignature => "invalid_signature",
            Verdict::InvalidEvent => "invalid_event",
            Verdict::WrongOrganization => "wrong_organization",
            Verdict::Conflict => "conflict",
            Verdict::InProgress => "in_progress",
            Verdict::Unavailable => "unavailable",
        }
    }
}

/// The answer to a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub verdict: Verdict,
    /// The event id, once known.
    pub id: Option<String>,
    pub retry_after: Option<u64>,
    pub body: Value,
}

impl Reply {
    /// The reply for a verdict that carries no event id (405, 413, 415, 401, …).
    pub fn new(verdict: Verdict) -> Reply {
        Reply {
            verdict,
            id: None,
            retry_after: None,
            body: json!({ "error": verdict.as_str() }),
        }
    }

    fn with_id(verdict: Verdict, id: &str) -> Reply {
        let key = if verdict.status() == 200 {
            "status"
        } else {
            "error"
        };
        Reply {
            verdict,
            id: Some(id.to_string()),
            retry_after: None,
            body: json!({ key: verdict.as_str(), "id": id }),
        }
    }

    fn invalid_event(detail: String, id: Option<String>) -> Reply {
        Reply {
            verdict: Verdict::InvalidEvent,
            id,
            retry_after: None,
            body: json!({ "error": "invalid_event", "detail": detail }),
        }
    }

    fn unavailable(why: &str, id: Option<&str>) -> Reply {
        tracing::warn!(
            event_id = id.unwrap_or(""),
            reason = why,
            "store unavailable"
        );
        Reply {
            verdict: Verdict::Unavailable,
            id: id.map(str::to_string),
            retry_after: Some(UNAVAILABLE_RETRY_AFTER),
            body: json!({ "error": "unavailable" }),
        }
    }

    pub fn status(&self) -> u16 {
        self.verdict.status()
    }

    /// The JSON body as bytes.
    pub fn body_bytes(&self) -> Vec<u8> {
        self.body.to_string().into_bytes()
    }

    /// Response headers: `Content-Type`, and `Retry-After` on a 503.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![("content-type", "application/json".to_string())];
        if let Some(seconds) = self.retry_after {
            headers.push(("retry-after", seconds.to_string()));
        }
        if self.verdict == Verdict::MethodNotAllowed {
            headers.push(("allow", "POST".to_string()));
        }
        headers
    }
}

/// A reply as an HTTP response, the same in the Lambda and in `zofhook serve`.
impl<B: From<String>> From<Reply> for http::Response<B> {
    fn from(reply: Reply) -> http::Response<B> {
        let mut response = http::Response::new(B::from(reply.body.to_string()));
        // Every verdict's status is a valid one; the fallback is never taken.
        *response.status_mut() = http::StatusCode::from_u16(reply.status())
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        for (name, value) in reply.headers() {
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                response
                    .headers_mut()
                    .insert(http::HeaderName::from_static(name), value);
            }
        }
        response
    }
}

/// The receive pipeline, built once per process.
pub struct Receiver {
    config: Arc<Config>,
    verifier: Verifier,
    secrets: Arc<dyn SecretSource>,
    ledger: Arc<dyn Ledger>,
    queue: Arc<dyn Queue>,
    clock: Clock,
    seen: Seen,
}

/// Ids this process began recording lately (within a receive lease). A repeat of one of them
/// (a retry after `in_progress`, a duplicate) is likely refused: it puts first and sends only
/// if the record became its own, so a storm of retries does not become a storm of stray
/// messages. Losing an entry costs nothing but one send beside a refused put.
struct Seen {
    ids: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

/// Most ids [`Seen`] keeps; past it, the oldest half is forgotten.
const SEEN_MAX: usize = 4096;

impl Seen {
    /// Whether `id` was begun here within `window_ms` of `now_ms`; records it as begun now.
    fn check_and_mark(&self, id: &str, now_ms: i64, window_ms: i64) -> bool {
        let Ok(mut ids) = self.ids.lock() else {
            return false;
        };
        let seen = ids
            .insert(id.to_string(), now_ms)
            .is_some_and(|at| now_ms.saturating_sub(at) < window_ms);
        if ids.len() > SEEN_MAX {
            let mut ages: Vec<i64> = ids.values().copied().collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            ids.retain(|_, at| *at >= cut);
        }
        seen
    }
}

impl Receiver {
    pub fn new(
        config: Arc<Config>,
        secrets: Arc<dyn SecretSource>,
        ledger: Arc<dyn Ledger>,
        queue: Arc<dyn Queue>,
        clock: Clock,
    ) -> Receiver {
        let verifier = Verifier::new(
            config.scheme,
            config.signature_header.clone(),
            config.tolerance_seconds,
        )
        .with_encoding(config.secret_encoding);
        Receiver {
            config,
            verifier,
            secrets,
            ledger,
            queue,
            clock,
            seen: Seen {
                ids: std::sync::Mutex::new(std::collections::HashMap::new()),
            },
        }
    }

    /// Answers one delivery within the response deadline, and logs one line about it.
    pub async fn receive(&self, delivery: Delivery<'_>) -> Reply {
        let started = Instant::now();
        let reply = self.answer(delivery).await;
        tracing::info!(
            event_id = reply.id.as_deref().unwrap_or(""),
            verdict = reply.verdict.as_str(),
            status = reply.status(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "delivery"
        );
        reply
    }

    /// Answers one delivery within the response deadline, logging nothing about it: the receiver
    /// Lambda writes one line per delivery that is its log line and its metrics at once
    /// ([`crate::metrics::Metrics::delivery`]).
    pub async fn answer(&self, delivery: Delivery<'_>) -> Reply {
        tokio::time::timeout(self.config.response_deadline, self.pipeline(delivery))
            .await
            .unwrap_or_else(|_| Reply::unavailable("response deadline reached", None))
    }

    async fn pipeline(&self, delivery: Delivery<'_>) -> Reply {
        if delivery.method != Method::POST {
            return Reply::new(Verdict::MethodNotAllowed);
        }
        let body = match self.read_body(delivery.body) {
            Ok(body) => body,
            Err(reply) => return *reply,
        };
        if !json_or_absent(delivery.headers) {
            return Reply::new(Verdict::UnsupportedMediaType);
        }
        let now_ms = (self.clock)();
        if let Err(why) = self.verify(delivery.headers, &body, now_ms).await {
            tracing::info!(reason = %why, "signature rejected");
            return Reply::new(Verdict::InvalidSignature);
        }
        let envelope = match event::parse(&body) {
            Ok(e) => e,
            Err(e) => return Reply::invalid_event(e.to_string(), None),
        };
        if let Some(org) = &self.config.organization_id {
            if envelope.organization_id.as_deref() != Some(org.as_str()) {
                let mut reply = Reply::new(Verdict::WrongOrganization);
                reply.id = Some(envelope.id);
                return reply;
            }
        }
        if !self.config.event_types.admits(&envelope.kind) {
            return Reply::with_id(Verdict::Ignored, &envelope.id);
        }
        self.record_and_enqueue(&envelope, &body, now_ms).await
    }

    fn read_body<'b>(&self, body: Body<'b>) -> Result<Cow<'b, [u8]>, Box<Reply>> {
        let max = self.config.max_body_bytes;
        match body {
            Body::Raw(bytes) if bytes.len() > max => {
                Err(Box::new(Reply::new(Verdict::PayloadTooLarge)))
            }
            Body::Raw(bytes) => Ok(Cow::Borrowed(bytes)),
            Body::Base64(text) => {
                // Bound the work before decoding: 4 characters carry 3 bytes.
                if text.len() / 4 * 3 > max + 3 {
                    return Err(Box::new(Reply::new(Verdict::PayloadTooLarge)));
                }
                let bytes = B64.decode(text.trim()).map_err(|_| {
                    Box::new(Reply::invalid_event(
                        "body is not valid base64".into(),
                        None,
                    ))
                })?;
                if bytes.len() > max {
                    return Err(Box::new(Reply::new(Verdict::PayloadTooLarge)));
                }
                Ok(Cow::Owned(bytes))
            }
        }
    }

    async fn verify(&self, headers: &HeaderMap, body: &[u8], now_ms: i64) -> Result<(), Rejection> {
        let now = now_ms.div_euclid(1000);
        let first = self
            .verifier
            .verify(&self.secrets.current(), headers, body, now);
        match first {
            // Only a well-formed signature that matches no secret suggests a rotation.
            Err(Rejection::NoMatch) => match self.secrets.refresh().await {
                Some(fresh) => self.verifier.verify(&fresh, headers, body, now),
                None => first,
            },
            other => other,
        }
    }

    async fn record_and_enqueue(&self, envelope: &Envelope, body: &[u8], now_ms: i64) -> Reply {
        let id = envelope.id.as_str();
        let token = uuid::Uuid::new_v4().to_string();
        let record = Record::received(
            envelope,
            body,
            &token,
            now_ms,
            now_ms.saturating_add(millis(self.config.receive_lease)),
            self.config.retention_seconds(),
        );
        // On SQS the put and the send go out together: an accepted delivery costs two
        // sequential round trips (these, then the `enqueued` mark) and a duplicate one. A send
        // whose put was refused leaves a stray message; the worker drops it (another body under
        // the id) or finds the event already handled (the same body), and never takes a message
        // younger than a receive lease for an orphan, since its record may still be on its way.
        // A local queue sends once the record is ours: its send is a write, and a duplicate
        // must not wait for the writer. An id this process began lately puts first too (see
        // `Seen`). What to do next is decided by `protocol::Delivering`; this only performs it.
        let repeat = self
            .seen
            .check_and_mark(id, now_ms, millis(self.config.receive_lease));
        let overlap = self.queue.overlaps_put() && !repeat;
        let (mut delivering, first) = Delivering::start(&record, now_ms, overlap);
        let mut next = if first.contains(&DeliveryCall::Send) {
            let (begun, sent) = tokio::join!(
                self.bounded(self.ledger.begin(&record, now_ms)),
                self.bounded_queue(self.queue.send(id, body))
            );
            delivering.on(DeliveryInput::Sent(sent));
            delivering.on(DeliveryInput::Begun(begun))
        } else {
            let begun = self.bounded(self.ledger.begin(&record, now_ms)).await;
            delivering.on(DeliveryInput::Begun(begun))
        };
        while let Some(call) = next {
            let input = match call {
                DeliveryCall::Begin => {
                    DeliveryInput::Begun(self.bounded(self.ledger.begin(&record, now_ms)).await)
                }
                DeliveryCall::Send => {
                    DeliveryInput::Sent(self.bounded_queue(self.queue.send(id, body)).await)
                }
                DeliveryCall::Mark => {
                    DeliveryInput::Marked(self.bounded(self.ledger.mark_enqueued(id, &token)).await)
                }
                DeliveryCall::Read => DeliveryInput::Read(self.bounded(self.ledger.get(id)).await),
                DeliveryCall::Abandon => {
                    DeliveryInput::Abandoned(self.bounded(self.ledger.abandon(id, &token)).await)
                }
            };
            next = delivering.on(input);
        }
        match delivering.answer() {
            Some(Answer::Accepted) => Reply::with_id(Verdict::Accepted, id),
            Some(Answer::Duplicate) => Reply::with_id(Verdict::Duplicate, id),
            Some(Answer::Conflict) => Reply::with_id(Verdict::Conflict, id),
            Some(Answer::InProgress { retry_after_s }) => {
                let mut reply = Reply::new(Verdict::InProgress);
                reply.id = Some(id.to_string());
                reply.retry_after = Some(*retry_after_s);
                reply
            }
            Some(Answer::Unavailable(why)) => Reply::unavailable(why, Some(id)),
            None => Reply::unavailable("the delivery ended undecided", Some(id)),
        }
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, LedgerError>>,
    ) -> Result<T, LedgerError> {
        crate::clock::within(self.config.store_timeout, call, || {
            LedgerError::Unavailable("ledger call timed out".into())
        })
        .await
    }

    async fn bounded_queue(
        &self,
        call: impl Future<Output = Result<(), QueueError>>,
    ) -> Result<(), QueueError> {
        crate::clock::within(self.config.store_timeout, call, || {
            QueueError::Unavailable("queue send timed out".into())
        })
        .await
    }
}

/// `Content-Type` absent, `application/json`, or `application/<anything>+json`.
fn json_or_absent(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let Some(value) = values.next() else {
        return true;
    };
    if values.next().is_some() {
        return false;
    }
    let Ok(text) = value.to_str() else {
        return false;
    };
    let media = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

#[cfg(test)]
mod tests;
