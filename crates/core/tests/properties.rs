//! Property tests for the parsers a forger controls: the signature headers and the envelope.

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use zofhook_core::event;
use zofhook_core::signature::{Scheme, Secret, Secrets, Verifier};

const NOW: i64 = 1_780_000_000;

fn verifier(scheme: Scheme) -> Verifier {
    Verifier::new(scheme, HeaderName::from_static("zof-signature"), 300)
}

fn scheme() -> impl Strategy<Value = Scheme> {
    prop_oneof![
        Just(Scheme::HmacSha256),
        Just(Scheme::Timestamped),
        Just(Scheme::StandardWebhooks)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the headers say, a forger without the secret gets a rejection, never a panic.
    #[test]
    fn arbitrary_signature_headers_are_rejected(
        scheme in scheme(),
        value in "[ -~]{0,300}",
        id in "[ -~]{0,40}",
        ts in "[ -~]{0,25}",
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let secrets = Secrets::parse("the-real-secret", None).unwrap();
        let mut headers = HeaderMap::new();
        for (name, v) in [("zof-signature", &value), ("webhook-signature", &value), ("webhook-id", &id), ("webhook-timestamp", &ts)] {
            if let Ok(v) = HeaderValue::from_str(v) {
                headers.insert(name, v);
            }
        }
        prop_assert!(verifier(scheme).verify(&secrets, &headers, &body, NOW).is_err());
    }

    /// What `sign` makes, `verify` accepts; change one byte of the body and it is refused.
    #[test]
    fn signatures_round_trip_and_bind_every_byte(
        scheme in scheme(),
        secret in "[!-~]{1,64}",
        body in proptest::collection::vec(any::<u8>(), 1..1024),
        skew in -300i64..=300,
        flip in any::<prop::sample::Index>(),
    ) {
        let v = verifier(scheme);
        // A secret the scheme's reading can use (standard-webhooks reads base64).
        let key = Secret::parse(&secret)
            .ok()
            .filter(|k| k.check(v.reading).is_ok())
            .unwrap_or_else(|| Secret::parse("whsec_ZmFsbGJhY2s=").unwrap());
        let secrets = Secrets::new(key.clone(), None);
        let headers = v.sign_headers(&key, &body, NOW + skew, "msg_1");
        prop_assert!(v.verify(&secrets, &headers, &body, NOW).is_ok());
        let mut tampered = body.clone();
        let i = flip.index(tampered.len());
        tampered[i] ^= 0x01;
        prop_assert!(v.verify(&secrets, &headers, &tampered, NOW).is_err());
    }

    /// The envelope parser never panics, whatever the bytes.
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = event::parse(&body);
    }

    /// Any valid id and type, with any extra fields, parse back to themselves.
    #[test]
    fn valid_envelopes_parse(
        id in "[A-Za-z0-9_.:-]{1,128}",
        kind in "[a-z]{1,20}\\.[a-z]{1,20}",
        run in "\\PC{0,40}",
        extra in proptest::collection::btree_map("[a-z]{1,8}", "\\PC{0,20}", 0..5),
    ) {
        let mut object = serde_json::json!({"run_id": run, "organization_id": "org_a"});
        let mut top = serde_json::json!({"id": id, "type": kind, "created": "2026-05-20T12:00:00.123+02:00",
                                         "data": {"object": {}}});
        for (k, v) in &extra {
            if k != "run_id" && k != "organization_id" {
                object[k] = serde_json::json!(v);
            }
            if !["id", "type", "created", "data"].contains(&k.as_str()) {
                top[k] = serde_json::json!(v);
            }
        }
        top["data"]["object"] = object;
        let e = event::parse(top.to_string().as_bytes()).unwrap();
        prop_assert_eq!(e.id, id);
        prop_assert_eq!(e.kind, kind);
        prop_assert_eq!(e.run_id, Some(run));
    }

    /// An id outside the alphabet or length is always refused.
    #[test]
    fn invalid_ids_are_refused(id in "\\PC{0,140}") {
        prop_assume!(!event::valid_id(&id));
        let body = serde_json::json!({"id": id, "type": "run.completed", "created": "2026-05-20T12:00:00Z",
                                      "data": {"object": {}}});
        prop_assert!(event::parse(body.to_string().as_bytes()).is_err());
    }
}
