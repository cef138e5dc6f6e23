//! Conformance with the senders' own signing code, in both directions: Stripe's `stripe`
//! package, Svix's `svix`, the `standardwebhooks` library, GitHub's documented
//! `X-Hub-Signature-256` example and a Shopify-style base64 `X-Shopify-Hmac-Sha256`, each against
//! the real `zofhook verify`/`sign` (and `serve` for Stripe) with default settings but the scheme.
//! The Python libraries live in the test venv (`infra/requirements.txt`); `tests/senders/senders.py`
//! drives them.

use e2e::{data_dir, root, zofhook, Serve};
use std::time::{SystemTime, UNIX_EPOCH};

/// Stripe's shape: `whsec_` and 32 letters and digits; and its test-mode variant.
const STRIPE_SECRET: &str = "whsec_7Hq2LmN9pRt4VxZ1bC3dF5gJ8kW0sY6u";
const STRIPE_TEST_SECRET: &str = "whsec_test_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6";
const OLD_STRIPE_SECRET: &str = "whsec_0ldS3cretF0rRotat1onXXXXXXXXXXXXXX";
/// Svix's and Standard Webhooks' shape: `whsec_` and base64 of the key.
const SVIX_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SVIX_SECRET: &str = "whsec_b2xkLXNlY3JldC1rZXktYnl0ZXM=";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Runs a command of `senders.py` in the test venv; (exit code, trimmed stdout, stderr).
fn sender(args: &[&str]) -> (i32, String, String) {
    let python = root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "run the tests with `make test` (it makes .venv)"
    );
    let out = std::process::Command::new(python)
        .arg(root().join("tests/senders/senders.py"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn signed_by(args: &[&str]) -> String {
    let (code, out, err) = sender(args);
    assert_eq!(code, 0, "{err}");
    out
}

struct Body {
    _dir: tempfile::TempDir,
    path: String,
    bytes: Vec<u8>,
}

fn body(id: &str) -> Body {
    let dir = tempfile::tempdir().unwrap();
    let bytes = e2e::event(id, "org_a", "run_1");
    let path = dir.path().join("body.json");
    std::fs::write(&path, &bytes).unwrap();
    Body {
        path: path.to_str().unwrap().to_string(),
        _dir: dir,
        bytes,
    }
}

/// `zofhook verify` with these global settings; (exit code, stdout).
fn verify(settings: &[&str], headers: &[String], body: &Body, at: i64) -> (i32, String) {
    let at = at.to_string();
    let mut args: Vec<&str> = settings.to_vec();
    args.push("verify");
    for h in headers {
        args.extend(["-H", h.as_str()]);
    }
    args.extend(["--body", &body.path, "--timestamp", &at]);
    let (code, out, err) = zofhook(&args, &[]);
    assert!(code == 0 || code == 1, "{out}{err}");
    (code, out)
}

/// `zofhook sign`: the header lines it prints.
fn sign(settings: &[&str], body: &Body, at: i64, msg_id: &str) -> Vec<(String, String)> {
    let at = at.to_string();
    let mut args: Vec<&str> = settings.to_vec();
    args.extend([
        "sign",
        "--body",
        &body.path,
        "--timestamp",
        &at,
        "--msg-id",
        msg_id,
    ]);
    let (code, out, err) = zofhook(&args, &[]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| {
            let (name, value) = l.split_once(": ").unwrap();
            (name.to_string(), value.to_string())
        })
        .collect()
}

#[test]
fn stripe_signed_deliveries_verify_with_a_stripe_shaped_secret_and_ours_pass_stripe() {
    let t = now();
    for secret in [STRIPE_SECRET, STRIPE_TEST_SECRET] {
        let b = body("evt_stripe_1");
        let settings = ["--secret", secret, "--signature-scheme", "timestamped"];
        // Stripe signs, we verify.
        let header = signed_by(&["stripe-sign", secret, &t.to_string(), &b.path]);
        let (code, out) = verify(&settings, &[format!("Zof-Signature: {header}")], &b, t);
        assert_eq!((code, out.trim()), (0, "valid"), "{secret}: {header}");
        // We sign, Stripe verifies.
        let ours = sign(&settings, &b, t, "msg_1");
        assert_eq!(ours[0].0.to_lowercase(), "zof-signature");
        let (code, out, err) = sender(&["stripe-verify", secret, &ours[0].1, &b.path]);
        assert_eq!((code, out.as_str()), (0, "stripe: valid"), "{err}");
        // A stale Stripe signature is refused by both.
        let stale = signed_by(&["stripe-sign", secret, &(t - 400).to_string(), &b.path]);
        let (code, _) = verify(&settings, &[format!("Zof-Signature: {stale}")], &b, t);
        assert_eq!(code, 1);
        let (code, out, err) = sender(&["stripe-verify", secret, &stale, &b.path]);
        assert_eq!(code, 3, "not stripe's own refusal: {out}{err}");
        assert!(out.starts_with("stripe: rejected: "), "{out}");
    }
    // A rotation: signed with the old secret, verified with both configured.
    let b = body("evt_stripe_rotated");
    let header = signed_by(&["stripe-sign", OLD_STRIPE_SECRET, &t.to_string(), &b.path]);
    let rotated = [
        "--secret",
        STRIPE_SECRET,
        "--previous-secret",
        OLD_STRIPE_SECRET,
        "--signature-scheme",
        "timestamped",
    ];
    let (code, _) = verify(&rotated, &[format!("Zof-Signature: {header}")], &b, t);
    assert_eq!(code, 0);
    let only_new = [
        "--secret",
        STRIPE_SECRET,
        "--signature-scheme",
        "timestamped",
    ];
    let (code, _) = verify(&only_new, &[format!("Zof-Signature: {header}")], &b, t);
    assert_eq!(code, 1);
}

#[tokio::test]
async fn a_stripe_signed_delivery_is_accepted_by_serve_under_timestamped() {
    let dir = data_dir();
    let serve = Serve::start(
        &[
            "--data-dir",
            dir.to_str().unwrap(),
            "--secret",
            STRIPE_SECRET,
        ],
        &["--signature-scheme", "timestamped"],
        &[],
    );
    let b = body("evt_stripe_serve");
    let header = signed_by(&["stripe-sign", STRIPE_SECRET, &now().to_string(), &b.path]);
    let response = reqwest::Client::new()
        .post(&serve.url)
        .header("zof-signature", header)
        .header("content-type", "application/json")
        .body(b.bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let reply: serde_json::Value = response.json().await.unwrap();
    assert_eq!(reply["status"], "accepted", "{reply}");
}

#[test]
fn verify_names_the_setting_when_the_other_reading_would_pass() {
    let t = now();
    let b = body("evt_hint");
    let header = signed_by(&["stripe-sign", STRIPE_SECRET, &t.to_string(), &b.path]);
    // Forced to base64, the Stripe signature fails, and verify says which setting fixes it.
    let forced = [
        "--secret",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "--signature-scheme",
        "timestamped",
        "--secret-encoding",
        "base64",
    ];
    let header_other = signed_by(&[
        "stripe-sign",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        &t.to_string(),
        &b.path,
    ]);
    let (code, out) = verify(&forced, &[format!("Zof-Signature: {header_other}")], &b, t);
    assert_eq!(code, 1);
    assert!(
        out.contains("matches if the secret is read as UTF-8 bytes: --secret-encoding utf8"),
        "{out}"
    );
    // A signature that no reading passes gets no hint.
    let (code, out) = verify(&forced, &[format!("Zof-Signature: {header}")], &b, t);
    assert_eq!(code, 1);
    assert!(!out.contains("--secret-encoding"), "{out}");
    // A Stripe secret that is not base64 cannot be read as base64 at all: a start-up error.
    let (code, _, err) = zofhook(
        &[
            "--secret",
            STRIPE_TEST_SECRET,
            "--secret-encoding",
            "base64",
            "verify",
            "-H",
            "Zof-Signature: t=1,v1=00",
            "--body",
            &b.path,
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("SecretEncoding"), "{err}");
}

#[test]
fn svix_and_standardwebhooks_sign_and_verify_both_ways() {
    let t = now();
    for library in ["svix", "sw"] {
        let b = body(&format!("evt_{library}_1"));
        let settings = [
            "--secret",
            SVIX_SECRET,
            "--signature-scheme",
            "standard-webhooks",
        ];
        let msg_id = format!("msg_{library}_1");
        // Theirs signs, ours verifies.
        let signature = signed_by(&[
            &format!("{library}-sign"),
            SVIX_SECRET,
            &msg_id,
            &t.to_string(),
            &b.path,
        ]);
        let headers = [
            format!("webhook-id: {msg_id}"),
            format!("webhook-timestamp: {t}"),
            format!("webhook-signature: {signature}"),
        ];
        let (code, out) = verify(&settings, &headers, &b, t);
        assert_eq!((code, out.trim()), (0, "valid"), "{library}: {signature}");
        // Ours signs, theirs verifies.
        let ours = sign(&settings, &b, t, &msg_id);
        let ours_signature = &ours
            .iter()
            .find(|(n, _)| n == "webhook-signature")
            .unwrap()
            .1;
        let (code, out, err) = sender(&[
            &format!("{library}-verify"),
            SVIX_SECRET,
            &msg_id,
            &t.to_string(),
            ours_signature,
            &b.path,
        ]);
        assert_eq!(code, 0, "{library}: {out}{err}");
        // Rotation: signed with the old secret.
        let old = signed_by(&[
            &format!("{library}-sign"),
            OLD_SVIX_SECRET,
            &msg_id,
            &t.to_string(),
            &b.path,
        ]);
        let rotated = [
            "--secret",
            SVIX_SECRET,
            "--previous-secret",
            OLD_SVIX_SECRET,
            "--signature-scheme",
            "standard-webhooks",
        ];
        let old_headers = [
            format!("webhook-id: {msg_id}"),
            format!("webhook-timestamp: {t}"),
            format!("webhook-signature: {old}"),
        ];
        assert_eq!(verify(&rotated, &old_headers, &b, t).0, 0, "{library}");
        assert_eq!(verify(&settings, &old_headers, &b, t).0, 1, "{library}");
        // Stale: their signature from 400 s ago is refused by ours and by theirs.
        let stale_t = (t - 400).to_string();
        let stale = signed_by(&[
            &format!("{library}-sign"),
            SVIX_SECRET,
            &msg_id,
            &stale_t,
            &b.path,
        ]);
        let stale_headers = [
            format!("webhook-id: {msg_id}"),
            format!("webhook-timestamp: {stale_t}"),
            format!("webhook-signature: {stale}"),
        ];
        assert_eq!(verify(&settings, &stale_headers, &b, t).0, 1, "{library}");
        let (code, out, err) = sender(&[
            &format!("{library}-verify"),
            SVIX_SECRET,
            &msg_id,
            &stale_t,
            &stale,
            &b.path,
        ]);
        assert_eq!(
            code, 3,
            "{library} did not refuse the stale signature itself: {out}{err}"
        );
        assert!(out.starts_with(&format!("{library}: rejected: ")), "{out}");
    }
}

#[test]
fn githubs_documented_example_verifies() {
    // docs.github.com, "Validating webhook deliveries": this secret, this payload, this header.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("body");
    std::fs::write(&path, "Hello, World!").unwrap();
    let header = "X-Hub-Signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let settings = [
        "--secret",
        "It's a Secret to Everybody",
        "--signature-header",
        "X-Hub-Signature-256",
    ];
    let run = |settings: &[&str]| {
        let mut args = settings.to_vec();
        args.extend(["verify", "-H", header, "--body", path.to_str().unwrap()]);
        zofhook(&args, &[])
    };
    let (code, out, err) = run(&settings);
    assert_eq!((code, out.trim()), (0, "valid"), "{err}");
    // With the previous secret in a rotation too.
    let mut rotated = settings.to_vec();
    rotated[1] = "a-new-secret";
    rotated.extend(["--previous-secret", "It's a Secret to Everybody"]);
    assert_eq!(run(&rotated).0, 0);
    rotated.truncate(4);
    assert_eq!(run(&rotated).0, 1);
}

#[test]
fn shopify_style_base64_signatures_verify() {
    let b = body("evt_shopify_1");
    let secret = "shpss_0123456789abcdef0123456789abcdef";
    let value = signed_by(&["shopify-sign", secret, &b.path]);
    let settings = [
        "--secret",
        secret,
        "--signature-header",
        "X-Shopify-Hmac-Sha256",
    ];
    let header = format!("X-Shopify-Hmac-Sha256: {value}");
    let (code, out) = verify(&settings, std::slice::from_ref(&header), &b, now());
    assert_eq!((code, out.trim()), (0, "valid"), "{value}");
    let old = signed_by(&["shopify-sign", "shpss_old", &b.path]);
    let rotated = [
        "--secret",
        secret,
        "--previous-secret",
        "shpss_old",
        "--signature-header",
        "X-Shopify-Hmac-Sha256",
    ];
    let old_header = format!("X-Shopify-Hmac-Sha256: {old}");
    assert_eq!(
        verify(&rotated, std::slice::from_ref(&old_header), &b, now()).0,
        0
    );
    assert_eq!(verify(&settings, &[old_header], &b, now()).0, 1);
}
