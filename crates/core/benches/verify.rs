//! Signature verification, per scheme, at 1 KiB and 64 KiB bodies (issue 7).
//!
//! - `zofhook/<scheme>`: `Verifier::verify`, the whole check a delivery gets: header parsing,
//!   timestamp window, decoding, the MAC and the constant-time comparison.
//! - `floor/<scheme>`: the bare `hmac` + `sha2` computation over the same signed bytes plus the
//!   constant-time comparison, with the candidate already decoded: no implementation can do less.
//! - `floor-keyed/<scheme>`: the same, starting from an HMAC state keyed once (a clone), which is
//!   what `Secret` does: the strictest floor for our implementation.
//! - `peer/standard-webhooks`: the `standardwebhooks` crate (the Standard Webhooks reference
//!   library) verifying the same delivery.
//!
//! `infra/bench-report.py` turns criterion's estimates into the ratios in BENCHMARKS.md.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hmac::{KeyInit, Mac};
use http::{HeaderMap, HeaderName};
use std::hint::black_box;
use zofhook_core::signature::{Scheme, Secret, Secrets, Verifier};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const MSG_ID: &str = "evt_2Qm3bench";
const SIZES: [(usize, &str); 2] = [(1024, "1KiB"), (64 * 1024, "64KiB")];

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn body(len: usize) -> Vec<u8> {
    let mut body = br#"{"id":"evt_2Qm3bench","type":"run.completed","data":{"pad":""#.to_vec();
    body.resize(len - 3, b'x');
    body.extend_from_slice(b"\"}}");
    body
}

fn now() -> i64 {
    zofhook_core::now_ms() / 1000
}

/// The bytes each scheme signs, as the verifier sees them.
fn signed_bytes(scheme: Scheme, body: &[u8], t: i64) -> Vec<u8> {
    match scheme {
        Scheme::HmacSha256 => body.to_vec(),
        Scheme::Timestamped => [format!("{t}.").as_bytes(), body].concat(),
        Scheme::StandardWebhooks => [format!("{MSG_ID}.{t}.").as_bytes(), body].concat(),
    }
}

fn verification(c: &mut Criterion) {
    let secret = Secret::parse(SECRET).expect("secret");
    let secrets = Secrets::new(secret.clone(), None);
    let key = B64
        .decode(SECRET.trim_start_matches("whsec_"))
        .expect("the secret's key");
    let peer = standardwebhooks::Webhook::new(SECRET).expect("peer secret");
    for (len, size) in SIZES {
        let body = body(len);
        let mut group = c.benchmark_group(format!("verify/{size}"));
        group.throughput(Throughput::Bytes(len as u64));
        for scheme in Scheme::ALL {
            let verifier = Verifier::new(scheme, HeaderName::from_static("zof-signature"), 300);
            let t = now();
            let headers = verifier.sign_headers(&secret, &body, t, MSG_ID);
            verifier
                .verify(&secrets, &headers, &body, t)
                .expect("our own signature verifies");
            group.bench_function(BenchmarkId::new("zofhook", scheme.as_str()), |b| {
                b.iter(|| {
                    verifier
                        .verify(&secrets, black_box(&headers), black_box(&body), t)
                        .is_ok()
                })
            });

            let signed = signed_bytes(scheme, &body, t);
            let mut mac = HmacSha256::new_from_slice(&key).expect("any key length");
            mac.update(&signed);
            let expected = mac.finalize().into_bytes().to_vec();
            group.bench_function(BenchmarkId::new("floor", scheme.as_str()), |b| {
                b.iter(|| {
                    let mut mac = HmacSha256::new_from_slice(black_box(&key)).expect("key");
                    mac.update(black_box(&signed));
                    mac.verify_slice(black_box(&expected)).is_ok()
                })
            });

            let keyed = HmacSha256::new_from_slice(&key).expect("any key length");
            group.bench_function(BenchmarkId::new("floor-keyed", scheme.as_str()), |b| {
                b.iter(|| {
                    let mut mac = black_box(&keyed).clone();
                    mac.update(black_box(&signed));
                    mac.verify_slice(black_box(&expected)).is_ok()
                })
            });

            if scheme == Scheme::StandardWebhooks {
                let peer_headers: HeaderMap = headers.clone();
                peer.verify(&body, &peer_headers)
                    .expect("the peer accepts our signature");
                group.bench_function(BenchmarkId::new("peer", scheme.as_str()), |b| {
                    b.iter(|| {
                        peer.verify(black_box(&body), black_box(&peer_headers))
                            .is_ok()
                    })
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, verification);
criterion_main!(benches);
