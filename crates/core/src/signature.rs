//! Signature schemes, webhook secrets, and `sign` beside `verify` (DESIGN.md section 2).
//!
//! Verification is pure: headers, the exact body bytes and the clock in, a [`Rejection`] or `Ok`
//! out. One scheme is active per deployment; no other scheme is ever tried as a fallback.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::digest::CtOutput;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

type HmacSha256 = Hmac<Sha256>;

/// Length of an HMAC-SHA256 output: the only length a candidate signature may decode to.
const MAC_LEN: usize = 32;

/// The signature scheme of a deployment (`SignatureScheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `hmac-sha256`: MAC over the raw body in one header.
    HmacSha256,
    /// `timestamped`: `t=<unix>,v1=<hex>` over `<t>.<body>`.
    Timestamped,
    /// `standard-webhooks`: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    StandardWebhooks,
}

impl Scheme {
    pub const ALL: [Scheme; 3] = [
        Scheme::HmacSha256,
        Scheme::Timestamped,
        Scheme::StandardWebhooks,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::HmacSha256 => "hmac-sha256",
            Scheme::Timestamped => "timestamped",
            Scheme::StandardWebhooks => "standard-webhooks",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scheme {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Scheme::ALL
            .into_iter()
            .find(|scheme| scheme.as_str() == s)
            .ok_or(())
    }
}

/// Why a secret was refused at start-up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("the secret is empty")]
    Empty,
    #[error("the secret starts with whsec_ but the rest is not standard base64")]
    BadWhsec,
}

/// One webhook secret's key bytes, with the HMAC state already keyed by them (the key schedule,
/// two SHA-256 blocks, is paid once per secret instead of once per delivery). Never printed.
#[derive(Clone)]
pub struct Secret {
    key: Vec<u8>,
    keyed: HmacSha256,
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.key == other.key
    }
}

impl Eq for Secret {}

impl Secret {
    /// `whsec_<base64>` is the base64 after the prefix; anything else is its UTF-8 bytes.
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        if text.is_empty() {
            return Err(SecretError::Empty);
        }
        let key = match text.strip_prefix("whsec_") {
            Some(encoded) => B64.decode(encoded).map_err(|_| SecretError::BadWhsec)?,
            None => text.as_bytes().to_vec(),
        };
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        // HMAC accepts keys of any length, so this cannot fail; an empty key is refused above.
        let keyed =
            <HmacSha256 as KeyInit>::new_from_slice(&key).map_err(|_| SecretError::Empty)?;
        Ok(Secret { key, keyed })
    }

    fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The active secrets: the current one and, during a rotation, the previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secrets {
    pub current: Secret,
    pub previous: Option<Secret>,
}

impl Secrets {
    pub fn new(current: Secret, previous: Option<Secret>) -> Secrets {
        Secrets { current, previous }
    }

    /// Parses the current secret and an optional previous one; an empty previous means none.
    pub fn parse(current: &str, previous: Option<&str>) -> Result<Secrets, SecretError> {
        let current = Secret::parse(current)?;
        let previous = match previous {
            Some(p) if !p.is_empty() => Some(Secret::parse(p)?),
            _ => None,
        };
        Ok(Secrets { current, previous })
    }

    fn iter(&self) -> impl Iterator<Item = &Secret> {
        std::iter::once(&self.current).chain(self.previous.iter())
    }
}

/// Why a delivery's signature was rejected. Callers answer every variant with the same 401 and
/// no detail; the variant is for logs and tests.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Rejection {
    #[error("the signature header {0} is missing")]
    MissingHeader(String),
    #[error("the signature header {0} holds no well-formed signature")]
    Malformed(String),
    #[error("the timestamp is missing or not a whole number of seconds")]
    BadTimestamp,
    #[error("the timestamp is outside the tolerance")]
    OutsideTolerance,
    #[error("no signature matches any active secret")]
    NoMatch,
}

/// Verifies (and makes) signatures of one scheme.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub scheme: Scheme,
    pub header: HeaderName,
    pub tolerance_seconds: u64,
}

// Header names, not strings: a lookup by `&str` parses and checks the name every time.
const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

impl Verifier {
    pub fn new(scheme: Scheme, header: HeaderName, tolerance_seconds: u64) -> Verifier {
        Verifier {
            scheme,
            header,
            tolerance_seconds,
        }
    }

    /// Checks `body` (the exact bytes received) against the headers at time `now` (unix seconds).
    pub fn verify(
        &self,
        secrets: &Secrets,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<(), Rejection> {
        match self.scheme {
            Scheme::HmacSha256 => {
                let value = header_text(headers, &self.header)?;
                let candidates: Vec<Candidate> = value
                    .split(|c: char| c == ',' || c.is_ascii_whitespace())
                    .filter(|t| !t.is_empty())
                    .filter_map(decode_plain_candidate)
                    .collect();
                if candidates.is_empty() {
                    return Err(Rejection::Malformed(self.header.to_string()));
                }
                matches_any(secrets, &[body], &candidates)
            }
            Scheme::Timestamped => {
                let value = header_text(headers, &self.header)?;
                let mut timestamp = None;
                let mut candidates = Vec::new();
                for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let Some((key, val)) = part.split_once('=') else {
                        return Err(Rejection::Malformed(self.header.to_string()));
                    };
                    match key.trim() {
                        // Two timestamps would let an attacker pick the one we check.
                        "t" if timestamp.is_some() => return Err(Rejection::BadTimestamp),
                        "t" => timestamp = Some(val.trim()),
                        "v1" => candidates.extend(decode_hex(val.trim())),
                        _ => {}
                    }
                }
                let t = timestamp.ok_or(Rejection::BadTimestamp)?;
                self.check_time(t, now)?;
                if candidates.is_empty() {
                    return Err(Rejection::Malformed(self.header.to_string()));
                }
                matches_any(secrets, &[t.as_bytes(), b".", body], &candidates)
            }
            Scheme::StandardWebhooks => {
                let id = header_text(headers, &WEBHOOK_ID)?;
                let t = header_text(headers, &WEBHOOK_TIMESTAMP)?;
                let value = header_text(headers, &WEBHOOK_SIGNATURE)?;
                self.check_time(t.trim(), now)?;
                let candidates: Vec<Candidate> = value
                    .split_ascii_whitespace()
                    .filter_map(|sig| sig.strip_prefix("v1,"))
                    .filter_map(decode_base64)
                    .collect();
                if candidates.is_empty() {
                    return Err(Rejection::Malformed(WEBHOOK_SIGNATURE.to_string()));
                }
                let (id, t) = (id.as_bytes(), t.trim().as_bytes());
                matches_any(secrets, &[id, b".", t, b".", body], &candidates)
            }
        }
    }

    fn check_time(&self, t: &str, now: i64) -> Result<(), Rejection> {
        let t: i64 = t.parse().map_err(|_| Rejection::BadTimestamp)?;
        // checked_sub: a timestamp near i64::MIN or MAX must not wrap into the window.
        match now.checked_sub(t) {
            Some(age) if age.unsigned_abs() <= self.tolerance_seconds => Ok(()),
            _ => Err(Rejection::OutsideTolerance),
        }
    }

    /// The headers that sign `body` with `secret` at time `now`; `msg_id` is used by
    /// `standard-webhooks` only.
    pub fn sign(
        &self,
        secret: &Secret,
        body: &[u8],
        now: i64,
        msg_id: &str,
    ) -> Vec<(HeaderName, String)> {
        match self.scheme {
            Scheme::HmacSha256 => {
                let mac = compute(secret, &[body]);
                vec![(self.header.clone(), format!("sha256={}", hex::encode(mac)))]
            }
            Scheme::Timestamped => {
                let t = now.to_string();
                let mac = compute(secret, &[t.as_bytes(), b".", body]);
                vec![(
                    self.header.clone(),
                    format!("t={t},v1={}", hex::encode(mac)),
                )]
            }
            Scheme::StandardWebhooks => {
                let t = now.to_string();
                let mac = compute(secret, &[msg_id.as_bytes(), b".", t.as_bytes(), b".", body]);
                vec![
                    (WEBHOOK_ID, msg_id.to_string()),
                    (WEBHOOK_TIMESTAMP, t),
                    (WEBHOOK_SIGNATURE, format!("v1,{}", B64.encode(mac))),
                ]
            }
        }
    }

    /// Like [`Verifier::sign`], as a header map ready to send.
    pub fn sign_headers(&self, secret: &Secret, body: &[u8], now: i64, msg_id: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in self.sign(secret, body, now, msg_id) {
            if let Ok(value) = HeaderValue::from_str(&value) {
                map.append(name, value);
            }
        }
        map
    }
}

/// All values of a header, joined as one comma-separated list (RFC 9110 field combination).
/// Borrowed when there is one value, the usual case: no allocation.
fn header_text<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Cow<'h, str>, Rejection> {
    let malformed = || Rejection::Malformed(name.to_string());
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Err(Rejection::MissingHeader(name.to_string()));
    };
    let mut joined = Cow::Borrowed(first.to_str().map_err(|_| malformed())?);
    for value in values {
        let text = value.to_str().map_err(|_| malformed())?;
        let joined = joined.to_mut();
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(text);
    }
    if joined.trim().is_empty() {
        return Err(malformed());
    }
    Ok(joined)
}

/// A decoded candidate signature: always exactly one HMAC-SHA256 output long.
type Candidate = [u8; MAC_LEN];

/// One token of an `hmac-sha256` header: `sha256=<hex>`, `v1=<hex>`, bare hex, or base64.
fn decode_plain_candidate(token: &str) -> Option<Candidate> {
    let value = token
        .strip_prefix("sha256=")
        .or_else(|| token.strip_prefix("v1="))
        .unwrap_or(token);
    decode_hex(value).or_else(|| decode_base64(value))
}

fn decode_hex(value: &str) -> Option<Candidate> {
    let mut mac = [0; MAC_LEN];
    // Fails unless `value` is exactly 2 × MAC_LEN hex digits.
    hex::decode_to_slice(value, &mut mac).ok()?;
    Some(mac)
}

fn decode_base64(value: &str) -> Option<Candidate> {
    // Room for the decoder's length estimate; a longer value fails as too long.
    let mut buf = [0; MAC_LEN + 3];
    let len = B64.decode_slice(value, &mut buf).ok()?;
    (len == MAC_LEN).then(|| {
        let mut mac = [0; MAC_LEN];
        mac.copy_from_slice(&buf[..MAC_LEN]);
        mac
    })
}

fn compute(secret: &Secret, parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = secret.mac();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Computes the MAC once per secret and compares it with every candidate in constant time.
fn matches_any(
    secrets: &Secrets,
    parts: &[&[u8]],
    candidates: &[Candidate],
) -> Result<(), Rejection> {
    for secret in secrets.iter() {
        let mut mac = secret.mac();
        for part in parts {
            mac.update(part);
        }
        let expected = mac.finalize();
        for candidate in candidates {
            // CtOutput's equality is constant-time.
            if expected == CtOutput::new((*candidate).into()) {
                return Ok(());
            }
        }
    }
    Err(Rejection::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn verifier(scheme: Scheme) -> Verifier {
        Verifier::new(scheme, HeaderName::from_static("zof-signature"), 300)
    }

    fn secrets(s: &str) -> Secrets {
        Secrets::parse(s, None).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn github_documented_vector_verifies() {
        // docs.github.com "Validating webhook deliveries": secret, payload and X-Hub-Signature-256.
        let v = Verifier::new(
            Scheme::HmacSha256,
            HeaderName::from_static("x-hub-signature-256"),
            300,
        );
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let h = headers(&[("x-hub-signature-256", sig)]);
        let s = secrets("It's a Secret to Everybody");
        assert_eq!(v.verify(&s, &h, b"Hello, World!", NOW), Ok(()));
        assert_eq!(v.sign(&s.current, b"Hello, World!", NOW, "")[0].1, sig);
        assert_eq!(
            v.verify(&s, &h, b"Hello, World?", NOW),
            Err(Rejection::NoMatch)
        );
    }

    #[test]
    fn standard_webhooks_spec_vector_verifies() {
        // The test vector of the Standard Webhooks specification and its reference libraries.
        let s = secrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        let h = headers(&[
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            (
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
        ]);
        let v = verifier(Scheme::StandardWebhooks);
        assert_eq!(v.verify(&s, &h, body, 1614265330), Ok(()));
        let signed = v.sign(&s.current, body, 1614265330, "msg_p5jXN8AQM9LWM0D4loKWxJek");
        assert_eq!(
            signed[2].1,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        // Another version prefix and garbage around the good one are ignored.
        let h2 = headers(&[
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            (
                "webhook-signature",
                "v1a,abc v1,Zm9v v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
        ]);
        assert_eq!(v.verify(&s, &h2, body, 1614265330), Ok(()));
    }

    #[test]
    fn every_accepted_hmac_sha256_form_verifies() {
        let s = secrets("topsecret");
        let body = b"{\"id\":\"evt_1\"}";
        let mac = compute(&s.current, &[body]);
        let hex_lower = hex::encode(&mac);
        let forms = [
            format!("sha256={hex_lower}"),
            format!("v1={hex_lower}"),
            hex_lower.clone(),
            hex_lower.to_uppercase(),
            B64.encode(&mac),
            format!("sha256=deadbeef, {hex_lower}"),
            format!("v1={}  sha256={hex_lower}", "0".repeat(64)),
        ];
        let v = verifier(Scheme::HmacSha256);
        for form in forms {
            let h = headers(&[("zof-signature", &form)]);
            assert_eq!(v.verify(&s, &h, body, NOW), Ok(()), "form {form}");
        }
    }

    #[test]
    fn hmac_sha256_rejections() {
        let s = secrets("topsecret");
        let body = b"{}";
        let good = hex::encode(compute(&s.current, &[body]));
        let v = verifier(Scheme::HmacSha256);
        let cases: Vec<(Vec<(&str, String)>, Rejection)> = vec![
            (vec![], Rejection::MissingHeader("zof-signature".into())),
            (
                vec![("zof-signature", "".into())],
                Rejection::Malformed("zof-signature".into()),
            ),
            (
                vec![("zof-signature", "   ".into())],
                Rejection::Malformed("zof-signature".into()),
            ),
            (
                vec![("zof-signature", "v1,".into())],
                Rejection::Malformed("zof-signature".into()),
            ),
            (
                vec![("zof-signature", "sha256=".into())],
                Rejection::Malformed("zof-signature".into()),
            ),
            // Truncated: a prefix of the right MAC is never compared.
            (
                vec![("zof-signature", format!("sha256={}", &good[..62]))],
                Rejection::Malformed("zof-signature".into()),
            ),
            (
                vec![("zof-signature", format!("sha256={}", &good[..2]))],
                Rejection::Malformed("zof-signature".into()),
            ),
            // Wrong length: 33 bytes of hex, base64 of 31 bytes.
            (
                vec![("zof-signature", format!("{good}00"))],
                Rejection::Malformed("zof-signature".into()),
            ),
            (
                vec![("zof-signature", B64.encode([7u8; 31]))],
                Rejection::Malformed("zof-signature".into()),
            ),
            (
                vec![("zof-signature", "sha256=zz".repeat(8))],
                Rejection::Malformed("zof-signature".into()),
            ),
            // Right shape, wrong MAC.
            (
                vec![("zof-signature", format!("sha256={}", "ab".repeat(32)))],
                Rejection::NoMatch,
            ),
            // A signature made with another secret.
            (
                vec![(
                    "zof-signature",
                    hex::encode(compute(&Secret::parse("other").unwrap(), &[body])),
                )],
                Rejection::NoMatch,
            ),
        ];
        for (pairs, want) in cases {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(
                v.verify(&s, &headers(&pairs), body, NOW),
                Err(want),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn previous_secret_is_accepted_during_rotation() {
        let s = Secrets::parse("new-secret", Some("old-secret")).unwrap();
        let v = verifier(Scheme::Timestamped);
        let body = b"{}";
        for signer in [
            &Secret::parse("old-secret").unwrap(),
            &Secret::parse("new-secret").unwrap(),
        ] {
            let h = v.sign_headers(signer, body, NOW, "");
            assert_eq!(v.verify(&s, &h, body, NOW), Ok(()));
        }
        let h = v.sign_headers(&Secret::parse("older-secret").unwrap(), body, NOW, "");
        assert_eq!(v.verify(&s, &h, body, NOW), Err(Rejection::NoMatch));
        // Without the previous secret, the old signature stops working.
        let only_new = Secrets::parse("new-secret", Some("")).unwrap();
        let h = v.sign_headers(&Secret::parse("old-secret").unwrap(), body, NOW, "");
        assert_eq!(v.verify(&only_new, &h, body, NOW), Err(Rejection::NoMatch));
    }

    #[test]
    fn timestamped_tolerance_and_rejections() {
        let s = secrets("topsecret");
        let v = verifier(Scheme::Timestamped);
        let body = b"{\"a\":1}";
        let at = |t: i64| {
            let mac = compute(&s.current, &[t.to_string().as_bytes(), b".", body]);
            format!("t={t},v1={}", hex::encode(mac))
        };
        let ok = |value: &str| v.verify(&s, &headers(&[("zof-signature", value)]), body, NOW);
        assert_eq!(ok(&at(NOW)), Ok(()));
        assert_eq!(ok(&at(NOW - 300)), Ok(()));
        assert_eq!(ok(&at(NOW + 300)), Ok(()));
        assert_eq!(ok(&at(NOW - 301)), Err(Rejection::OutsideTolerance));
        assert_eq!(ok(&at(NOW + 301)), Err(Rejection::OutsideTolerance));
        // Extra keys are ignored; several v1 values are all tried.
        assert_eq!(
            ok(&format!("{},v0=abc,v1={}", at(NOW), "00".repeat(32))),
            Ok(())
        );
        // Overflow: the arithmetic must not wrap these into the window.
        for t in [i64::MIN, i64::MAX, i64::MIN + 1] {
            assert_eq!(
                ok(&format!("t={t},v1={}", "ab".repeat(32))),
                Err(Rejection::OutsideTolerance)
            );
        }
        let far = Verifier {
            tolerance_seconds: u64::MAX,
            ..v.clone()
        };
        let value = format!("t={},v1={}", i64::MIN, "ab".repeat(32));
        assert_eq!(
            far.verify(&s, &headers(&[("zof-signature", &value)]), body, i64::MAX),
            Err(Rejection::OutsideTolerance)
        );
        assert_eq!(
            ok("t=99999999999999999999,v1=ab"),
            Err(Rejection::BadTimestamp)
        );
        assert_eq!(
            ok(&format!("v1={}", "ab".repeat(32))),
            Err(Rejection::BadTimestamp)
        );
        assert_eq!(ok("t=abc"), Err(Rejection::BadTimestamp));
        assert_eq!(
            ok(&format!("t={NOW},t={NOW}")),
            Err(Rejection::BadTimestamp)
        );
        assert_eq!(
            ok(&format!("t={NOW}")),
            Err(Rejection::Malformed("zof-signature".into()))
        );
        assert_eq!(
            ok(&format!("t={NOW},v1=")),
            Err(Rejection::Malformed("zof-signature".into()))
        );
        assert_eq!(
            ok("garbage"),
            Err(Rejection::Malformed("zof-signature".into()))
        );
        // The timestamp is signed: moving it breaks the MAC.
        let moved = at(NOW).replacen(&format!("t={NOW}"), &format!("t={}", NOW - 1), 1);
        assert_eq!(ok(&moved), Err(Rejection::NoMatch));
    }

    #[test]
    fn standard_webhooks_rejections() {
        let s = secrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let v = verifier(Scheme::StandardWebhooks);
        let body = b"{}";
        let good = v.sign_headers(&s.current, body, NOW, "msg_1");
        assert_eq!(v.verify(&s, &good, body, NOW), Ok(()));
        for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            let mut h = good.clone();
            h.remove(missing);
            assert_eq!(
                v.verify(&s, &h, body, NOW),
                Err(Rejection::MissingHeader(missing.into()))
            );
        }
        let mut h = good.clone();
        h.insert("webhook-signature", HeaderValue::from_static("v1,"));
        assert_eq!(
            v.verify(&s, &h, body, NOW),
            Err(Rejection::Malformed("webhook-signature".into()))
        );
        // CVE-2024-21491: a truncated MAC (prefix) must never be compared.
        let full = good
            .get("webhook-signature")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        h.insert(
            "webhook-signature",
            HeaderValue::from_str(&full[..10]).unwrap(),
        );
        assert_eq!(
            v.verify(&s, &h, body, NOW),
            Err(Rejection::Malformed("webhook-signature".into()))
        );
        let mut h = good.clone();
        h.insert("webhook-id", HeaderValue::from_static("msg_2"));
        assert_eq!(v.verify(&s, &h, body, NOW), Err(Rejection::NoMatch));
        assert_eq!(
            v.verify(&s, &good, body, NOW + 301),
            Err(Rejection::OutsideTolerance)
        );
        assert_eq!(
            v.verify(&s, &good, body, NOW - 301),
            Err(Rejection::OutsideTolerance)
        );
        let mut h = good.clone();
        h.insert("webhook-timestamp", HeaderValue::from_static("soon"));
        assert_eq!(v.verify(&s, &h, body, NOW), Err(Rejection::BadTimestamp));
    }

    #[test]
    fn secrets_parse_and_fail_closed() {
        assert_eq!(Secret::parse(""), Err(SecretError::Empty));
        assert_eq!(Secret::parse("whsec_"), Err(SecretError::Empty));
        assert_eq!(Secret::parse("whsec_!!!"), Err(SecretError::BadWhsec));
        assert_eq!(Secret::parse("whsec_aGk=").unwrap().key, b"hi");
        assert_eq!(Secret::parse("plain").unwrap().key, b"plain");
        assert_eq!(
            format!("{:?}", Secret::parse("plain").unwrap()),
            "Secret(<redacted>)"
        );
        assert!(Secrets::parse("", Some("x")).is_err());
    }

    #[test]
    fn multiple_header_lines_are_combined() {
        let s = secrets("k");
        let v = verifier(Scheme::HmacSha256);
        let good = hex::encode(compute(&s.current, &[b"{}"]));
        let h = headers(&[("zof-signature", "sha256=00"), ("zof-signature", &good)]);
        assert_eq!(v.verify(&s, &h, b"{}", NOW), Ok(()));
    }

    #[test]
    fn schemes_parse_by_name_only() {
        for s in Scheme::ALL {
            assert_eq!(s.as_str().parse::<Scheme>(), Ok(s));
        }
        assert!("HMAC-SHA256".parse::<Scheme>().is_err());
    }
}
