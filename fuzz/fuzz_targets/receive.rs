//! The whole receive pipeline on the in-memory store, with correctly signed arbitrary bodies:
//! never a panic, a status from the table, and something stored only for a 200 `accepted`.
#![no_main]
use http::{HeaderName, Method};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use zofhook_core::config::Config;
use zofhook_core::ledger::memory::MemoryLedger;
use zofhook_core::queue::memory::MemoryQueue;
use zofhook_core::receive::{Body, Delivery, Receiver, Verdict};
use zofhook_core::secrets::StaticSecrets;
use zofhook_core::signature::{Scheme, Secret, Secrets, Verifier};

const NOW_MS: i64 = 1_780_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let ledger = Arc::new(MemoryLedger::new());
    let queue = Arc::new(MemoryQueue::new());
    let config = Config::from_lookup(|k| (k == "ZOFHOOK_EVENT_TYPES").then(|| "*".to_string())).unwrap();
    let receiver = Receiver::new(
        Arc::new(config),
        Arc::new(StaticSecrets::new(Secrets::parse("fuzz-secret", None).unwrap())),
        ledger.clone(),
        queue.clone(),
        Arc::new(|| NOW_MS),
    );
    let v = Verifier::new(Scheme::HmacSha256, HeaderName::from_static("zof-signature"), 300);
    let headers = v.sign_headers(&Secret::parse("fuzz-secret").unwrap(), body, NOW_MS / 1000, "m");
    let text = String::from_utf8_lossy(body);
    let delivery = Delivery {
        method: &Method::POST,
        headers: &headers,
        // Odd first bytes exercise the base64 path with the body as text.
        body: if pick % 2 == 0 { Body::Raw(body) } else { Body::Base64(&text) },
    };
    let reply = runtime.block_on(receiver.receive(delivery));
    let stored = ledger.len() + queue.sent().len();
    match reply.verdict {
        Verdict::Accepted => assert_eq!(stored, 2),
        Verdict::InvalidEvent | Verdict::PayloadTooLarge | Verdict::InvalidSignature => assert_eq!(stored, 0),
        other => panic!("unexpected verdict {other:?} for a signed body"),
    }
});
