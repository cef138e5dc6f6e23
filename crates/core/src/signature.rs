//! Signature schemes, webhook secrets, and `sign` beside `verify` (docs/design.md section 2).
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

/// How a secret's text becomes the HMAC key (`SecretEncoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretEncoding {
    /// As the scheme's own senders do: base64 after `whsec_` for `standard-webhooks` (the
    /// spec, Svix); the string's UTF-8 bytes, `whsec_` and all, for `timestamped` (Stripe) and
    /// `hmac-sha256` (GitHub, Shopify).
    Auto,
    /// Standard base64, after an optional `whsec_` prefix.
    Base64,
    /// The secret string's UTF-8 bytes, whatever it looks like.
    Utf8,
}

impl SecretEncoding {
    pub const ALL: [SecretEncoding; 3] = [
        SecretEncoding::Auto,
        SecretEncoding::Base64,
        SecretEncoding::Utf8,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SecretEncoding::Auto => "auto",
            SecretEncoding::Base64 => "base64",
            SecretEncoding::Utf8 => "utf8",
        }
    }

    /// The reading in force under `scheme`.
    pub fn reading(self, scheme: Scheme) -> KeyReading {
        match (self, scheme) {
            (SecretEncoding::Base64, _) => KeyReading::Base64,
            (SecretEncoding::Utf8, _) => KeyReading::Utf8,
            (SecretEncoding::Auto, Scheme::StandardWebhooks) => KeyReading::Base64,
            (SecretEncoding::Auto, _) => KeyReading::Utf8,
        }
    }
}

impl FromStr for SecretEncoding {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        SecretEncoding::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or(())
    }
}

/// One way of turning a secret's text into key bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyReading {
    Base64,
    Utf8,
}

impl KeyReading {
    /// The other reading (what `zofhook verify` tries when a signature fails).
    pub fn other(self) -> KeyReading {
        match self {
            KeyReading::Base64 => KeyReading::Utf8,
            KeyReading::Utf8 => KeyReading::Base64,
        }
    }

    /// The `SecretEncoding` value that forces this reading.
    pub fn setting(self) -> SecretEncoding {
        match self {
            KeyReading::Base64 => SecretEncoding::Base64,
            KeyReading::Utf8 => SecretEncoding::Utf8,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            KeyReading::Base64 => "as base64 (after whsec_)",
            KeyReading::Utf8 => "as UTF-8 bytes",
        }
    }
}

/// Why a secret was refused at start-up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("the secret is empty")]
    Empty,
    #[error("the secret is read as base64 (SecretEncoding), but it is not standard base64 after an optional whsec_")]
    NotBase64,
}

/// Key bytes with the HMAC state already keyed by them (the key schedule, two SHA-256 blocks, is
/// paid once per secret instead of once per delivery).
#[derive(Clone)]
struct Key {
    bytes: Vec<u8>,
    keyed: HmacSha256,
}

impl Key {
    fn new(bytes: Vec<u8>) -> Option<Key> {
        if bytes.is_empty() {
            return None;
        }
        // HMAC accepts keys of any length; only an empty key is refused, above.
        let keyed = <HmacSha256 as KeyInit>::new_from_slice(&bytes).ok()?;
        Some(Key { bytes, keyed })
    }
}

/// One webhook secret, ready under both readings of its text: its UTF-8 bytes, and (when the
/// text is base64 after an optional `whsec_`) the decoded bytes. The verifier uses the one
/// `SecretEncoding` puts in force. Never printed.
#[derive(Clone)]
pub struct Secret {
    utf8: Key,
    base64: Option<Key>,
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.utf8.bytes == other.utf8.bytes
    }
}

impl Eq for Secret {}

impl Secret {
    /// Any non-empty text; whether it also reads as base64 is checked against the reading in
    /// force ([`Secret::check`]).
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        let utf8 = Key::new(text.as_bytes().to_vec()).ok_or(SecretError::Empty)?;
        let encoded = text.strip_prefix("whsec_").unwrap_or(text);
        let base64 = B64.decode(encoded).ok().and_then(Key::new);
        Ok(Secret { utf8, base64 })
    }

    /// Whether the secret can be read this way (a start-up check: fail closed).
    pub fn check(&self, reading: KeyReading) -> Result<(), SecretError> {
        self.key(reading).map(|_| ())
    }

    fn key(&self, reading: KeyReading) -> Result<&Key, SecretError> {
        match reading {
            KeyReading::Utf8 => Ok(&self.utf8),
            KeyReading::Base64 => self.base64.as_ref().ok_or(SecretError::NotBase64),
        }
    }

    /// The key bytes under `reading` (tests compare them).
    pub fn key_bytes(&self, reading: KeyReading) -> Option<&[u8]> {
        self.key(reading).ok().map(|k| k.bytes.as_slice())
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

    /// Whether every secret can be read this way (a start-up check: fail closed).
    pub fn check(&self, reading: KeyReading) -> Result<(), SecretError> {
        self.iter().try_for_each(|s| s.check(reading))
    }

    fn iter(&self) -> impl Iterator<Item = &Secret> {
        std::iter::once(&self.current).chain(self.previous.iter())
    }
}

/// Why a delivery's signature was rejected. Callers answer every variant with the same 401 and
/// no detail; the variant is for logs and tests.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
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
    /// How secrets become keys: `SecretEncoding` resolved for the scheme.
    pub reading: KeyReading,
}

// Header names, not strings: a lookup by `&str` parses and checks the name every time.
const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

impl Verifier {
    /// A verifier with `SecretEncoding=auto`; see [`Verifier::with_encoding`].
    pub fn new(scheme: Scheme, header: HeaderName, tolerance_seconds: u64) -> Verifier {
        Verifier {
            scheme,
            header,
            tolerance_seconds,
            reading: SecretEncoding::Auto.reading(scheme),
        }
    }

    /// The same verifier reading secrets as `encoding` says, for this scheme.
    pub fn with_encoding(mut self, encoding: SecretEncoding) -> Verifier {
        self.reading = encoding.reading(self.scheme);
        self
    }

    /// The same verifier with secrets read one given way.
    pub fn with_reading(mut self, reading: KeyReading) -> Verifier {
        self.reading = reading;
        self
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
                let candidates: Candidates = value
                    .split(|c: char| c == ',' || c.is_ascii_whitespace())
                    .filter(|t| !t.is_empty())
                    .filter_map(decode_plain_candidate)
                    .collect();
                if candidates.is_empty() {
                    return Err(Rejection::Malformed(self.header.to_string()));
                }
                matches_any(secrets, self.reading, &[body], &candidates)
            }
            Scheme::Timestamped => {
                let value = header_text(headers, &self.header)?;
                let mut timestamp = None;
                let mut candidates = Candidates::new();
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
                matches_any(
                    secrets,
                    self.reading,
                    &[t.as_bytes(), b".", body],
                    &candidates,
                )
            }
            Scheme::StandardWebhooks => {
                let id = header_text(headers, &WEBHOOK_ID)?;
                let t = header_text(headers, &WEBHOOK_TIMESTAMP)?;
                let value = header_text(headers, &WEBHOOK_SIGNATURE)?;
                self.check_time(t.trim(), now)?;
                let candidates: Candidates = value
                    .split_ascii_whitespace()
                    .filter_map(|sig| sig.strip_prefix("v1,"))
                    .filter_map(decode_base64)
                    .collect();
                if candidates.is_empty() {
                    return Err(Rejection::Malformed(WEBHOOK_SIGNATURE.to_string()));
                }
                let (id, t) = (id.as_bytes(), t.trim().as_bytes());
                matches_any(
                    secrets,
                    self.reading,
                    &[id, b".", t, b".", body],
                    &candidates,
                )
            }
        }
    }

    fn check_time(&self, t: &str, now: i64) -> Result<(), Rejection> {
        // Whole seconds as senders write them: digits, perhaps a minus. `str::parse` would also
        // take a leading `+`, a second spelling of the same signed text.
        let digits = t.strip_prefix('-').unwrap_or(t);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Rejection::BadTimestamp);
        }
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
                let mac = compute(secret, self.reading, &[body]);
                vec![(
                    self.header.clone(),
                    format!("sha256={}", const_hex::encode(mac)),
                )]
            }
            Scheme::Timestamped => {
                let t = now.to_string();
                let mac = compute(secret, self.reading, &[t.as_bytes(), b".", body]);
                vec![(
                    self.header.clone(),
                    format!("t={t},v1={}", const_hex::encode(mac)),
                )]
            }
            Scheme::StandardWebhooks => {
                let t = now.to_string();
                let mac = compute(
                    secret,
                    self.reading,
                    &[msg_id.as_bytes(), b".", t.as_bytes(), b".", body],
                );
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

/// A delivery's candidates: senders send one, or two during their rotation; more spill to the heap.
type Candidates = smallvec::SmallVec<[Candidate; 2]>;

/// One token of an `hmac-sha256` header: `sha256=<hex>`, `v1=<hex>`, bare hex, or base64.
fn decode_plain_candidate(token: &str) -> Option<Candidate> {
    let value = token
        .strip_prefix("sha256=")
        .or_else(|| token.strip_prefix("v1="))
        .unwrap_or(token);
    decode_hex(value).or_else(|| decode_base64(value))
}

fn decode_hex(value: &str) -> Option<Candidate> {
    // Exactly 2 × MAC_LEN hex digits. The length is checked first: const-hex would also take a
    // `0x` before them, a second spelling of the same signature.
    if value.len() != 2 * MAC_LEN {
        return None;
    }
    let mut mac = [0; MAC_LEN];
    const_hex::decode_to_slice(value, &mut mac).ok()?;
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

/// The MAC under `reading`; a secret that cannot be read so (refused at start-up) signs with its
/// UTF-8 bytes, which no receiver reading base64 accepts.
fn compute(secret: &Secret, reading: KeyReading, parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = secret.key(reading).unwrap_or(&secret.utf8).keyed.clone();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Computes the MAC once per secret and compares it with every candidate in constant time.
fn matches_any(
    secrets: &Secrets,
    reading: KeyReading,
    parts: &[&[u8]],
    candidates: &[Candidate],
) -> Result<(), Rejection> {
    // A secret that cannot be read this way matches nothing (fail closed).
    for key in secrets.iter().filter_map(|s| s.key(reading).ok()) {
        let mut mac = key.keyed.clone();
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
        let mac = compute(&s.current, KeyReading::Utf8, &[body]);
        let hex_lower = const_hex::encode(&mac);
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
        let good = const_hex::encode(compute(&s.current, KeyReading::Utf8, &[body]));
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
            // The right MAC spelt with a `0x` before it: one spelling per signature.
            (
                vec![("zof-signature", format!("sha256=0x{good}"))],
                Rejection::Malformed("zof-signature".into()),
            ),
            (
                vec![("zof-signature", format!("0x{}", &good[..62]))],
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
                    const_hex::encode(compute(
                        &Secret::parse("other").unwrap(),
                        KeyReading::Utf8,
                        &[body],
                    )),
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
            let mac = compute(
                &s.current,
                KeyReading::Utf8,
                &[t.to_string().as_bytes(), b".", body],
            );
            format!("t={t},v1={}", const_hex::encode(mac))
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
        // More candidates than the two kept on the stack: the last one still counts.
        let good = at(NOW);
        let mac = good.split_once(",v1=").map(|(_, m)| m.to_string()).unwrap();
        assert_eq!(
            ok(&format!(
                "t={NOW},v1={},v1={},v1={mac}",
                "00".repeat(32),
                "11".repeat(32)
            )),
            Ok(())
        );
        // The right MAC with a `0x` before it is not a second spelling of it.
        assert_eq!(
            ok(&format!("t={NOW},v1=0x{mac}")),
            Err(Rejection::Malformed("zof-signature".into()))
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
        assert_eq!(
            Secret::parse("whsec_").unwrap().check(KeyReading::Base64),
            Err(SecretError::NotBase64)
        );
        // Any text is a secret; read as base64 it must be base64 (checked at start-up).
        let odd = Secret::parse("whsec_!!!").unwrap();
        assert_eq!(odd.check(KeyReading::Base64), Err(SecretError::NotBase64));
        assert_eq!(odd.check(KeyReading::Utf8), Ok(()));
        let svix = Secret::parse("whsec_aGk=").unwrap();
        assert_eq!(svix.key_bytes(KeyReading::Base64), Some(&b"hi"[..]));
        assert_eq!(svix.key_bytes(KeyReading::Utf8), Some(&b"whsec_aGk="[..]));
        assert_eq!(
            Secret::parse("plain").unwrap().key_bytes(KeyReading::Utf8),
            Some(&b"plain"[..])
        );
        assert!(Secrets::parse("whsec_!!!", None)
            .unwrap()
            .check(KeyReading::Base64)
            .is_err());
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
        let good = const_hex::encode(compute(&s.current, KeyReading::Utf8, &[b"{}"]));
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

    #[test]
    fn auto_follows_each_schemes_senders() {
        assert_eq!(
            SecretEncoding::Auto.reading(Scheme::StandardWebhooks),
            KeyReading::Base64
        );
        assert_eq!(
            SecretEncoding::Auto.reading(Scheme::Timestamped),
            KeyReading::Utf8
        );
        assert_eq!(
            SecretEncoding::Auto.reading(Scheme::HmacSha256),
            KeyReading::Utf8
        );
        for scheme in Scheme::ALL {
            assert_eq!(SecretEncoding::Utf8.reading(scheme), KeyReading::Utf8);
            assert_eq!(SecretEncoding::Base64.reading(scheme), KeyReading::Base64);
        }
        assert_eq!("utf8".parse(), Ok(SecretEncoding::Utf8));
        assert!("hex".parse::<SecretEncoding>().is_err());
    }

    #[test]
    fn a_stripe_shaped_secret_is_its_whole_string_under_timestamped() {
        // Stripe signs `<t>.<body>` with the secret string as the key, `whsec_` included.
        let secret = "whsec_test_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6";
        let body = br#"{"id":"evt_1"}"#;
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{NOW}.").as_bytes());
        mac.update(body);
        let expected = const_hex::encode(mac.finalize().into_bytes());
        let header = format!("t={NOW},v1={expected}");
        let v = Verifier::new(
            Scheme::Timestamped,
            HeaderName::from_static("zof-signature"),
            300,
        );
        let h = headers(&[("zof-signature", header.as_str())]);
        let s = secrets(secret);
        assert_eq!(v.verify(&s, &h, body, NOW), Ok(()));
        assert_eq!(v.sign(&s.current, body, NOW, "")[0].1, header);
        // Forced to base64 the same delivery fails, and no receiver ever falls back.
        let forced = v.clone().with_encoding(SecretEncoding::Base64);
        assert_eq!(forced.verify(&s, &h, body, NOW), Err(Rejection::NoMatch));
    }
}
