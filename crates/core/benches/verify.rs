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

mod fixture;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fixture::{Delivery, SECRET, SIZES};
use http::HeaderMap;
use std::hint::black_box;
use zofhook_core::signature::Scheme;

fn verification(c: &mut Criterion) {
    let peer = standardwebhooks::Webhook::new(SECRET).expect("peer secret");
    for (len, size) in SIZES {
        let mut group = c.benchmark_group(format!("verify/{size}"));
        group.throughput(Throughput::Bytes(len as u64));
        for scheme in Scheme::ALL {
            let d = Delivery::new(scheme, len);
            group.bench_function(BenchmarkId::new("zofhook", scheme.as_str()), |b| {
                b.iter(|| d.zofhook())
            });
            group.bench_function(BenchmarkId::new("floor", scheme.as_str()), |b| {
                b.iter(|| d.floor())
            });
            group.bench_function(BenchmarkId::new("floor-keyed", scheme.as_str()), |b| {
                b.iter(|| d.floor_keyed())
            });
            if scheme == Scheme::StandardWebhooks {
                let peer_headers: HeaderMap = d.headers.clone();
                peer.verify(&d.body, &peer_headers)
                    .expect("the peer accepts our signature");
                group.bench_function(BenchmarkId::new("peer", scheme.as_str()), |b| {
                    b.iter(|| {
                        peer.verify(black_box(&d.body), black_box(&peer_headers))
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
