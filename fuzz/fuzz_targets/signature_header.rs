//! The signature header parsers of all three schemes: never a panic, never a forged success.
#![no_main]
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use zofhook_core::signature::{Scheme, Secrets, Verifier};

fuzz_target!(|data: &[u8]| {
    // First byte picks the scheme; the rest splits into header value and body at the first NUL.
    let Some((&pick, rest)) = data.split_first() else { return };
    let scheme = Scheme::ALL[usize::from(pick) % 3];
    let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let (value, body) = rest.split_at(split);
    let Ok(value) = HeaderValue::from_bytes(value) else { return };
    let mut headers = HeaderMap::new();
    for name in ["zof-signature", "webhook-signature", "webhook-id", "webhook-timestamp"] {
        headers.insert(name, value.clone());
    }
    let secrets = Secrets::parse("fuzz-secret", Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).unwrap();
    let v = Verifier::new(scheme, HeaderName::from_static("zof-signature"), 300);
    assert!(v.verify(&secrets, &headers, body, 1_780_000_000).is_err());
});
