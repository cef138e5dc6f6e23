//! The receive pipeline on the in-memory ledger and queue (issue 7): what one delivery costs in
//! our code, with the store's latency taken out.
//!
//! - `receive/accepted`: a new event: method and size checks, signature, strict envelope parse,
//!   the ledger's conditional begin, the enqueue, the `queued` mark, the reply.
//! - `receive/duplicate`: the same delivery again: everything up to the conditional begin, which
//!   finds the record and answers 200 `duplicate`.
//! - `receive/verify-only` (the baseline): `Verifier::verify` on the same delivery, so the ratio
//!   says what the pipeline adds on top of the signature check it cannot avoid.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{HeaderMap, Method};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use zofhook_core::config::Config;
use zofhook_core::ledger::memory::MemoryLedger;
use zofhook_core::queue::memory::MemoryQueue;
use zofhook_core::receive::{Body, Delivery, Receiver, Verdict};
use zofhook_core::secrets::StaticSecrets;
use zofhook_core::signature::{Secret, Secrets, Verifier};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A `run.completed` event as Zof sends it (about 300 bytes).
fn event(id: &str) -> Vec<u8> {
    serde_json::json!({
        "id": id, "type": "run.completed", "created": "2026-11-27T12:00:00Z",
        "data": {"object": {"id": "res_8812", "organization_id": "org_bench",
                            "run_id": "run_7Hc2kQ", "name": "nightly regression",
                            "status": "completed", "url": "https://zof.example/runs/run_7Hc2kQ"}}
    })
    .to_string()
    .into_bytes()
}

struct Signed {
    headers: HeaderMap,
    body: Vec<u8>,
}

fn signed(verifier: &Verifier, secret: &Secret, id: &str) -> Signed {
    let body = event(id);
    let headers = verifier.sign_headers(secret, &body, zofhook_core::now_ms() / 1000, id);
    Signed { headers, body }
}

async fn receive(receiver: &Receiver, s: &Signed) -> Verdict {
    let delivery = Delivery {
        method: &Method::POST,
        headers: &s.headers,
        body: Body::Raw(&s.body),
    };
    receiver.receive(delivery).await.verdict
}

fn pipeline(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let config = Arc::new(Config::from_lookup(|_| None).expect("default settings"));
    let secret = Secret::parse(SECRET).expect("secret");
    let secrets = Secrets::new(secret.clone(), None);
    let receiver = Receiver::new(
        config.clone(),
        Arc::new(StaticSecrets::new(secrets.clone())),
        Arc::new(MemoryLedger::new()),
        Arc::new(MemoryQueue::new()),
        zofhook_core::system_clock(),
    );
    let verifier = Verifier::new(
        config.scheme,
        config.signature_header.clone(),
        config.tolerance_seconds,
    );
    let receiver = &receiver;

    let mut group = c.benchmark_group("receive");
    let counter = AtomicU64::new(0);
    let fresh = || {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        signed(&verifier, &secret, &format!("evt_bench_{n:012}"))
    };
    let first = fresh();
    let verdict = rt.block_on(receive(receiver, &first));
    assert_eq!(verdict, Verdict::Accepted, "a new event is accepted");
    group.bench_function("accepted", |b| {
        b.to_async(&rt).iter_batched(
            fresh,
            |s| async move { receive(receiver, black_box(&s)).await },
            BatchSize::SmallInput,
        )
    });

    let again = signed(&verifier, &secret, "evt_bench_duplicate");
    assert_eq!(rt.block_on(receive(receiver, &again)), Verdict::Accepted);
    assert_eq!(rt.block_on(receive(receiver, &again)), Verdict::Duplicate);
    group.bench_function("duplicate", |b| {
        b.to_async(&rt)
            .iter(|| async { receive(receiver, black_box(&again)).await })
    });

    let now = zofhook_core::now_ms() / 1000;
    group.bench_function("verify-only", |b| {
        b.iter(|| {
            verifier
                .verify(
                    &secrets,
                    black_box(&again.headers),
                    black_box(&again.body),
                    now,
                )
                .is_ok()
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
