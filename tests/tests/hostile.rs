//! Adversarial deliveries: each with the status it must get and the check that nothing was
//! stored or queued. Run on the receive pipeline itself (in-memory ledger and queue), so
//! "nothing stored" is exact.

use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::json;
use std::sync::Arc;
use zofhook_core::config::Config;
use zofhook_core::ledger::memory::MemoryLedger;
use zofhook_core::queue::memory::MemoryQueue;
use zofhook_core::receive::{Body, Delivery, Receiver};
use zofhook_core::secrets::StaticSecrets;
use zofhook_core::signature::{Rejection, Scheme, Secret, Secrets, Verifier};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NOW_MS: i64 = 1_780_000_000_000;

struct Case {
    name: &'static str,
    method: Method,
    headers: Vec<(String, String)>,
    body: Body2,
    status: u16,
}

enum Body2 {
    Raw(Vec<u8>),
    Base64(String),
}

fn sig(body: &[u8]) -> String {
    let v = Verifier::new(
        Scheme::HmacSha256,
        HeaderName::from_static("zof-signature"),
        300,
    );
    v.sign(&Secret::parse(SECRET).unwrap(), body, NOW_MS / 1000, "")
        .remove(0)
        .1
}

fn mac_hex(body: &[u8]) -> String {
    sig(body).trim_start_matches("sha256=").to_string()
}

fn good_event(id: &str) -> Vec<u8> {
    json!({"id": id, "type": "run.completed", "created": "2026-05-20T12:00:00Z",
           "data": {"object": {"organization_id": "org_a", "run_id": "run_1"}}})
    .to_string()
    .into_bytes()
}

/// A signed POST of `body` with JSON content type, plus `extra` headers.
fn signed(name: &'static str, body: Vec<u8>, status: u16) -> Case {
    let s = sig(&body);
    Case {
        name,
        method: Method::POST,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("zof-signature".into(), s),
        ],
        body: Body2::Raw(body),
        status,
    }
}

fn with_sig(name: &'static str, body: Vec<u8>, signature: String, status: u16) -> Case {
    Case {
        name,
        method: Method::POST,
        headers: vec![("zof-signature".into(), signature)],
        body: Body2::Raw(body),
        status,
    }
}

fn cases() -> Vec<Case> {
    let ev = good_event("evt_hostile");
    let mac = mac_hex(&ev);
    let b64mac = base64::engine::general_purpose::STANDARD.encode(hex::decode(&mac).unwrap());
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let deep_event = format!(
        r#"{{"id":"evt_deep","type":"run.completed","created":"2026-05-20T12:00:00Z","data":{{"object":{{"x":{deep}}}}}}}"#
    );
    let mut cases = vec![
        // Signature header shapes.
        with_sig("no signature header", ev.clone(), String::new(), 401),
        with_sig("prefix only v1,", ev.clone(), "v1,".into(), 401),
        with_sig("prefix only sha256=", ev.clone(), "sha256=".into(), 401),
        with_sig("truncated MAC (31 bytes)", ev.clone(), format!("sha256={}", &mac[..62]), 401),
        with_sig("one hex char short", ev.clone(), format!("sha256={}", &mac[..63]), 401),
        with_sig("MAC plus a byte", ev.clone(), format!("sha256={mac}00"), 401),
        with_sig("empty MAC list of commas", ev.clone(), ",,, ,".into(), 401),
        with_sig("MAC of the empty body", ev.clone(), sig(b""), 401),
        with_sig("MAC with the wrong secret", ev.clone(), format!("sha256={}", "7".repeat(64)), 401),
        with_sig("non-hex of the right length", ev.clone(), format!("sha256={}", "zz".repeat(32)), 401),
        with_sig("base64 of 31 bytes", ev.clone(), base64::engine::general_purpose::STANDARD.encode([1u8; 31]), 401),
        with_sig("timestamped form under hmac-sha256", ev.clone(), format!("t=1,v1={}", "0".repeat(64)), 401),
        with_sig("1,000 bogus candidates", ev.clone(), vec![format!("v1={}", "0".repeat(64)); 1000].join(","), 401),
        with_sig("unicode in the header value", ev.clone(), "sha256=é".into(), 401),
        // Accepted shapes (the control group).
        with_sig("upper-case hex", ev.clone(), format!("sha256={}", mac.to_uppercase()), 200),
        with_sig("bare base64 MAC", ev.clone(), b64mac.clone(), 200),
        with_sig("good MAC after garbage", ev.clone(), format!("garbage, v1=00 {mac}"), 200),
        // Methods.
        Case { method: Method::GET, ..signed("GET", ev.clone(), 405) },
        Case { method: Method::PUT, ..signed("PUT", ev.clone(), 405) },
        Case { method: Method::OPTIONS, ..signed("OPTIONS", ev.clone(), 405) },
        Case { method: Method::from_bytes(b"PURGE").unwrap(), ..signed("custom method", ev.clone(), 405) },
        // Content types.
        content_type("text/plain", &ev, 415),
        content_type("application/xml", &ev, 415),
        content_type("multipart/form-data; boundary=x", &ev, 415),
        content_type("application/json-seq", &ev, 415),
        content_type("application/json; charset=utf-8", &ev, 200),
        // Sizes.
        signed("body one byte over the limit", pad(&good_event("evt_big"), 262_145), 413),
        signed("empty body, signed", Vec::new(), 400),
        // JSON shapes, all correctly signed.
        signed("not JSON", b"id=evt_1".to_vec(), 400),
        signed("JSON array", b"[]".to_vec(), 400),
        signed("JSON string", b"\"evt\"".to_vec(), 400),
        signed("truncated JSON", ev[..ev.len() - 1].to_vec(), 400),
        signed("nesting 200 deep", deep_event.into_bytes(), 400),
        signed("invalid UTF-8", [&ev[..10], &[0xff, 0xfe][..], &ev[10..]].concat(), 400),
        signed("BOM before the JSON", [&[0xef, 0xbb, 0xbf][..], &ev[..]].concat(), 400),
        signed("duplicate id keys", br#"{"id":"evt_a","id":"evt_b","type":"run.completed","created":"2026-05-20T12:00:00Z","data":{"object":{}}}"#.to_vec(), 400),
        // Ids.
        signed("empty id", event_with("id", json!("")), 400),
        signed("id with a space", event_with("id", json!("evt 1")), 400),
        signed("id with a slash", event_with("id", json!("evt/../1")), 400),
        signed("id 129 characters", event_with("id", json!("a".repeat(129))), 400),
        signed("id with unicode", event_with("id", json!("évt_1")), 400),
        signed("id with a NUL", event_with("id", json!("evt\u{0}1")), 400),
        signed("numeric id", event_with("id", json!(12345)), 400),
        signed("null id", event_with("id", json!(null)), 400),
        // Other fields.
        signed("created not RFC 3339", event_with("created", json!("20/05/2026")), 400),
        signed("type with a newline", event_with("type", json!("run.completed\n")), 400),
        signed("data.object a string", event_with("data", json!({"object": "x"})), 400),
        signed("other event type", event_with("type", json!("run.started")), 200),
        // Base64 bodies from API Gateway.
        base64_case("base64 body, good", base64::engine::general_purpose::STANDARD.encode(&ev), &ev, 200),
        base64_case("base64 with invalid characters", "!!!!".into(), &ev, 400),
        base64_case("base64 URL-safe alphabet", base64::engine::general_purpose::URL_SAFE.encode([0xfb, 0xff, 0xfe]), &ev, 400),
        base64_case("base64 of a body the signature is not for", base64::engine::general_purpose::STANDARD.encode(b"{}"), &ev, 401),
    ];
    // Timestamps (timestamped scheme) are covered by the timestamped table below.
    cases.retain(|c| !c.name.is_empty());
    cases
}

fn pad(body: &[u8], len: usize) -> Vec<u8> {
    let mut padded = body.to_vec();
    padded.resize(len, b' ');
    padded
}

fn event_with(field: &str, value: serde_json::Value) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&good_event("evt_field")).unwrap();
    v[field] = value;
    v.to_string().into_bytes()
}

fn content_type(ct: &'static str, body: &[u8], status: u16) -> Case {
    let mut c = signed(ct, body.to_vec(), status);
    c.headers[0].1 = ct.to_string();
    c
}

fn base64_case(name: &'static str, encoded: String, signed_body: &[u8], status: u16) -> Case {
    Case {
        name,
        method: Method::POST,
        headers: vec![("zof-signature".into(), sig(signed_body))],
        body: Body2::Base64(encoded),
        status,
    }
}

fn receiver(config: Config) -> (Receiver, Arc<MemoryLedger>, Arc<MemoryQueue>) {
    let ledger = Arc::new(MemoryLedger::new());
    let queue = Arc::new(MemoryQueue::new());
    let receiver = Receiver::new(
        Arc::new(config),
        Arc::new(StaticSecrets::new(Secrets::parse(SECRET, None).unwrap())),
        ledger.clone(),
        queue.clone(),
        Arc::new(|| NOW_MS),
    );
    (receiver, ledger, queue)
}

async fn run(receiver: &Receiver, case: &Case) -> u16 {
    let mut headers = HeaderMap::new();
    for (k, v) in &case.headers {
        if v.is_empty() {
            continue;
        }
        headers.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    let body = match &case.body {
        Body2::Raw(bytes) => Body::Raw(bytes),
        Body2::Base64(text) => Body::Base64(text),
    };
    receiver
        .receive(Delivery {
            method: &case.method,
            headers: &headers,
            body,
        })
        .await
        .status()
}

#[tokio::test]
async fn every_hostile_delivery_gets_its_status_and_stores_nothing() {
    let all = cases();
    assert!(all.len() >= 40, "{} cases", all.len());
    let mut failures = Vec::new();
    for case in &all {
        // A fresh store per case, so "stored" is about this delivery alone.
        let (receiver, ledger, queue) = receiver(Config::default());
        let status = run(&receiver, case).await;
        let stored = ledger.len();
        let queued = queue.sent().len();
        let accepted = status == 200 && case.name != "other event type";
        let expect_stored = usize::from(accepted);
        if status != case.status || stored != expect_stored || queued != expect_stored {
            failures.push(format!(
                "{}: status {status} (want {}), stored {stored}, queued {queued}",
                case.name, case.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `t=<text>,v1=<MAC>` with a MAC that is right for that very text (`HMAC(secret, text.body)`):
/// only the timestamp's reading can refuse it.
fn signed_at(text: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={text},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Each hostile timestamp carries a MAC that matches it, so the refusal is the timestamp's own
/// (`BadTimestamp` or `OutsideTolerance`, read off the verifier), never the MAC's; and the
/// receive pipeline answers it 401 and stores nothing.
#[tokio::test]
async fn hostile_timestamps_are_refused() {
    let config =
        Config::from_lookup(|k| (k == "ZOFHOOK_SIGNATURE_SCHEME").then(|| "timestamped".into()))
            .unwrap();
    let body = good_event("evt_ts");
    let v = Verifier::new(
        Scheme::Timestamped,
        HeaderName::from_static("zof-signature"),
        300,
    );
    let secrets = Secrets::parse(SECRET, None).unwrap();
    let now = NOW_MS / 1000;
    let at = |t: i64| signed_at(&t.to_string(), &body);
    // The verifier's own signature and ours agree: the MACs below are real ones.
    assert_eq!(
        at(now),
        v.sign(&Secret::parse(SECRET).unwrap(), &body, now, "")
            .remove(0)
            .1
    );
    let (bad, outside) = (
        Err(Rejection::BadTimestamp),
        Err(Rejection::OutsideTolerance),
    );
    let table = [
        (at(now), Ok(())),
        (at(now - 300), Ok(())),
        (at(now + 300), Ok(())),
        (at(now - 301), outside.clone()),
        (at(now + 301), outside.clone()),
        (at(i64::MAX), outside.clone()),
        (at(i64::MIN), outside.clone()),
        (at(0), outside.clone()),
        (at(-now), outside.clone()),
        (signed_at(&format!("{now}.5"), &body), bad.clone()),
        (signed_at(&format!("+{now}"), &body), bad.clone()),
        (signed_at(&format!("0x{now:x}"), &body), bad.clone()),
        (signed_at("99999999999999999999999", &body), bad.clone()),
        (signed_at("", &body), bad.clone()),
        // Two timestamps, the MAC right for the first: refused, not checked against either.
        (
            format!("t={},{}", now - 1000, signed_at(&now.to_string(), &body)),
            bad.clone(),
        ),
    ];
    for (header, want) in table {
        let mut headers = HeaderMap::new();
        headers.insert("zof-signature", HeaderValue::from_str(&header).unwrap());
        assert_eq!(v.verify(&secrets, &headers, &body, now), want, "{header}");
        let (receiver, ledger, _) = receiver(config.clone());
        let status = receiver
            .receive(Delivery {
                method: &Method::POST,
                headers: &headers,
                body: Body::Raw(&body),
            })
            .await
            .status();
        let accepted = want.is_ok();
        assert_eq!(status, if accepted { 200 } else { 401 }, "{header}");
        assert_eq!(ledger.len(), usize::from(accepted), "{header}");
    }
}
