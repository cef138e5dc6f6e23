//! The commands besides `serve`, as a user runs them (the built binary): `send` with nothing but
//! a data dir, `sign` and `verify` in every scheme, start-up errors, every setting a flag and a
//! variable.

use e2e::{data_dir, event, wait_processed, zofhook, Serve};
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test]
async fn send_reaches_serve_with_nothing_but_the_data_dir() {
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let _serve = Serve::start(&["--data-dir", d], &[], &[]);
    let (code, out, err) = zofhook(
        &[
            "--data-dir",
            d,
            "send",
            "--id",
            "evt_send_1",
            "--run-id",
            "run_9",
            "--times",
            "3",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], r#"200 {"id":"evt_send_1","status":"accepted"}"#);
    assert_eq!(lines[1], r#"200 {"id":"evt_send_1","status":"duplicate"}"#);
    wait_processed(
        &dir,
        &HashSet::from(["evt_send_1".to_string()]),
        Duration::from_secs(10),
    );
    let (code, out, _) = zofhook(
        &["--data-dir", d, "events", "show", "evt_send_1", "--json"],
        &[],
    );
    assert_eq!(code, 0);
    let record: Value = serde_json::from_str(&out).unwrap();
    for key in [
        "id",
        "type",
        "status",
        "attempts",
        "received_at",
        "processed_at",
        "outcome",
    ] {
        assert!(record.get(key).is_some(), "{key} in {record}");
    }
    assert_eq!(record["run_id"], "run_9");
    assert_eq!(record["outcome"]["status"], "unknown");
    let (code, out, _) = zofhook(&["--data-dir", d, "events", "list"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("evt_send_1") && out.contains("processed"),
        "{out}"
    );
    let (code, _, err) = zofhook(&["--data-dir", d, "events", "show", "evt_nope"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("no event evt_nope"));
    // A file body with a wrong secret: printed, and the exit code says it failed.
    let file = dir.join("body.json");
    std::fs::write(&file, event("evt_send_2", "org_a", "r")).unwrap();
    let (code, out, _) = zofhook(
        &[
            "--data-dir",
            d,
            "--secret",
            "other",
            "send",
            "--body",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(out.trim(), r#"401 {"error":"invalid_signature"}"#);
}

#[test]
fn sending_an_id_again_sends_the_same_event() {
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let _serve = Serve::start(&["--data-dir", d], &[], &[]);
    let (_, first, _) = zofhook(&["--data-dir", d, "send", "--id", "evt_demo_1"], &[]);
    let (_, again, _) = zofhook(&["--data-dir", d, "send", "--id", "evt_demo_1"], &[]);
    assert_eq!(
        first.trim(),
        r#"200 {"id":"evt_demo_1","status":"accepted"}"#
    );
    assert_eq!(
        again.trim(),
        r#"200 {"id":"evt_demo_1","status":"duplicate"}"#
    );
}

#[test]
fn sign_and_verify_round_trip_and_catch_tampering() {
    let dir = data_dir();
    let body = dir.join("b.json");
    std::fs::write(&body, b"{\"id\":\"evt_1\"}").unwrap();
    let b = body.to_str().unwrap();
    for scheme in ["hmac-sha256", "timestamped", "standard-webhooks"] {
        let (code, out, err) = zofhook(
            &[
                "--secret",
                "whsec_czNjcmV0",
                "--signature-scheme",
                scheme,
                "sign",
                "--body",
                b,
            ],
            &[],
        );
        assert_eq!(code, 0, "{err}");
        let mut args = vec![
            "--secret",
            "whsec_czNjcmV0",
            "--signature-scheme",
            scheme,
            "verify",
            "--body",
            b,
        ];
        for line in out.lines() {
            args.extend(["-H", line]);
        }
        let (code, out2, _) = zofhook(&args, &[]);
        assert_eq!((code, out2.trim()), (0, "valid"), "{scheme}: {out}");
        std::fs::write(&body, b"{\"id\":\"evt_2\"}").unwrap();
        let (code, out3, _) = zofhook(&args, &[]);
        assert_eq!(code, 1, "{scheme}");
        assert!(out3.starts_with("invalid"));
        std::fs::write(&body, b"{\"id\":\"evt_1\"}").unwrap();
    }
}

#[test]
fn a_bad_setting_stops_start_up_naming_it() {
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let (code, _, err) = zofhook(&["--data-dir", d, "serve", "--max-body-bytes", "0"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("ZOFHOOK_MAX_BODY_BYTES (MaxBodyBytes)") && err.contains("accepts"),
        "{err}"
    );
    let (code, _, err) = zofhook(
        &["--data-dir", d, "serve"],
        &[("ZOFHOOK_SIGNATURE_SCHEME", "md5".into())],
    );
    assert_eq!(code, 2);
    assert!(err.contains("ZOFHOOK_SIGNATURE_SCHEME"), "{err}");
    // Read as base64 (standard-webhooks' convention), a secret that is not base64 fails closed.
    let (code, _, err) = zofhook(
        &[
            "--data-dir",
            d,
            "--secret",
            "whsec_%%",
            "--signature-scheme",
            "standard-webhooks",
            "serve",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("ZOFHOOK_SECRET") && !err.contains("%%"),
        "{err}"
    );
    let (code, _, err) = zofhook(&["--data-dir", d, "send"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("no secret"), "{err}");
}

#[test]
fn every_setting_is_a_flag_and_a_variable() {
    let (code, help, _) = zofhook(&["serve", "--help"], &[]);
    assert_eq!(code, 0);
    for setting in zofhook_core::config::SETTINGS {
        assert!(
            help.contains(&format!("--{}", setting.flag())),
            "--{} missing from:\n{help}",
            setting.flag()
        );
        assert!(help.contains(&setting.env()), "{} missing", setting.env());
    }
    for flag in [
        "--data-dir",
        "--listen",
        "--workers",
        "--secret",
        "--previous-secret",
        "--aws",
        "--table-name",
        "--queue-url",
        "--dlq-url",
    ] {
        assert!(help.contains(flag), "{flag} missing");
    }
    // The variable works as well as the flag.
    let dir = e2e::data_dir();
    let (code, _, err) = zofhook(
        &["--data-dir", dir.to_str().unwrap(), "serve"],
        &[("ZOFHOOK_DEDUPE_RETENTION_DAYS", "0".into())],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("ZOFHOOK_DEDUPE_RETENTION_DAYS (DedupeRetentionDays)"),
        "{err}"
    );
}
