//! `zofhook register` against a fake Zof API on 127.0.0.1 (docs/design.md section 11): the
//! request's shape, the printed id, the returned secret stored with the old one kept as the
//! previous secret (in the data dir, or with `--aws` in Secrets Manager on the emulator), and a
//! refusal.

use e2e::fake::{answer, Fake};
use e2e::{data_dir, event, sign, zofhook};
use serde_json::{json, Value};

const NEW_SECRET: &str = "whsec_bmV3LXNpZ25pbmctc2VjcmV0LWZyb20tem9m";

/// `zofhook <global> register --url <url> <args>` against `api`.
fn register(api: &str, global: &[&str], args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["--zof-api-base-url", api, "--zof-api-token", "tok_test"];
    all.extend(global);
    all.extend(["register", "--url", "https://hooks.example.test/webhook"]);
    all.extend(args);
    zofhook(&all, &[])
}

/// Whether `zofhook --data-dir dir verify` takes a delivery signed with `secret`.
fn verifies(dir: &std::path::Path, secret: &str) -> bool {
    let body = event("evt_rotation", "org_1", "run_1");
    let file = dir.join("body.json");
    std::fs::write(&file, &body).unwrap();
    let (name, value) = sign(secret, &body);
    let header = format!("{name}: {value}");
    let (code, out, err) = zofhook(
        &[
            "--data-dir",
            dir.to_str().unwrap(),
            "verify",
            "--body",
            file.to_str().unwrap(),
            "-H",
            &header,
        ],
        &[],
    );
    assert!(code == 0 || code == 1, "verify: {code} {out} {err}");
    code == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_posts_the_subscription_prints_the_id_and_rotates_the_local_secret() {
    let fake = Fake::default();
    fake.script(
        "/v1/webhooks",
        vec![],
        answer(
            201,
            json!({"id": "wh_123", "secret": NEW_SECRET, "status": "enabled"}),
        ),
    );
    let api = fake.start().await;
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let old = "whsec_b2xkLWxvY2FsLXNlY3JldA==";
    std::fs::write(dir.join("secret"), format!("{old}\n")).unwrap();

    let (code, out, err) = register(
        &api,
        &["--data-dir", d],
        &["--events", "run.failed,run.completed", "--yes"],
    );
    assert_eq!(code, 0, "{out}\n{err}");

    let seen = fake.seen("/v1/webhooks");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(
        seen[0].headers["authorization"].to_str().unwrap(),
        "Bearer tok_test"
    );
    assert_eq!(
        seen[0].body,
        json!({"url": "https://hooks.example.test/webhook",
               "events": ["run.completed", "run.failed"]})
    );

    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "Registered webhook wh_123 for https://hooks.example.test/webhook"
    );
    assert!(
        lines.contains(&"  events: run.completed, run.failed"),
        "{out}"
    );
    assert!(lines.contains(&"  status: \"enabled\""), "{out}");
    assert!(
        !out.contains(NEW_SECRET),
        "the secret is never printed: {out}"
    );
    assert!(out.contains("signing secret stored in"), "{out}");

    let stored = std::fs::read_to_string(dir.join("secret")).unwrap();
    assert_eq!(stored.trim(), NEW_SECRET);
    let previous = std::fs::read_to_string(dir.join("previous-secret")).unwrap();
    assert_eq!(previous.trim(), old);
    use std::os::unix::fs::PermissionsExt;
    for name in ["secret", "previous-secret"] {
        let mode = std::fs::metadata(dir.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    // No gap: the receiver takes deliveries signed with either secret, and no other.
    assert!(verifies(&dir, NEW_SECRET));
    assert!(verifies(&dir, old));
    assert!(!verifies(&dir, "whsec_c29tZS1vdGhlci1zZWNyZXQ="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_yes_and_without_a_terminal_the_secret_is_not_stored() {
    let fake = Fake::default();
    fake.script(
        "/v1/webhooks",
        vec![],
        answer(200, json!({"id": "wh_9", "secret": NEW_SECRET})),
    );
    let api = fake.start().await;
    let dir = data_dir();
    std::fs::write(dir.join("secret"), "whsec_b2xk\n").unwrap();
    let (code, out, err) = register(&api, &["--data-dir", dir.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.starts_with("Registered webhook wh_9 for "), "{out}");
    assert!(
        out.contains("signing secret not stored: rerun with --yes"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("secret")).unwrap(),
        "whsec_b2xk\n"
    );
    assert!(!dir.join("previous-secret").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_a_secret_leaves_the_receiver_unchanged() {
    let fake = Fake::default();
    fake.script("/v1/webhooks", vec![], answer(201, json!({"id": "wh_7"})));
    let api = fake.start().await;
    let dir = data_dir();
    let (code, out, err) = register(&api, &["--data-dir", dir.to_str().unwrap()], &["--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Registered webhook wh_7"), "{out}");
    assert!(out.contains("no signing secret in the answer"), "{out}");
    assert!(!dir.join("secret").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_exits_1_with_the_apis_status_and_message_and_stores_nothing() {
    let fake = Fake::default();
    fake.script(
        "/v1/webhooks",
        vec![answer(
            401,
            json!({"error": {"message": "invalid API token"}}),
        )],
        answer(422, json!({"message": "url must be https"})),
    );
    let api = fake.start().await;
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let (code, out, err) = register(&api, &["--data-dir", d], &["--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert_eq!(
        err.trim(),
        "zofhook: Zof refused the subscription: 401 Unauthorized: invalid API token"
    );
    assert!(out.is_empty(), "{out}");
    let (code, _, err) = register(&api, &["--data-dir", d], &["--yes"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("422 Unprocessable Entity: url must be https"),
        "{err}"
    );
    assert!(!dir.join("secret").exists());
    assert_eq!(fake.seen("/v1/webhooks").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_the_receiver_cannot_read_is_refused_and_nothing_is_written() {
    let fake = Fake::default();
    fake.script(
        "/v1/webhooks",
        vec![],
        answer(201, json!({"id": "wh_5", "secret": "not base64 at all!"})),
    );
    let api = fake.start().await;
    let dir = data_dir();
    std::fs::write(dir.join("secret"), "whsec_b2xk\n").unwrap();
    let (code, out, err) = register(
        &api,
        &[
            "--data-dir",
            dir.to_str().unwrap(),
            "--secret-encoding",
            "base64",
        ],
        &["--yes"],
    );
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("cannot be used; nothing was stored"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("secret")).unwrap(),
        "whsec_b2xk\n"
    );
    assert!(!dir.join("previous-secret").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_an_error_before_anything_is_sent() {
    let fake = Fake::default();
    let api = fake.start().await;
    let dir = data_dir();
    let d = dir.to_str().unwrap();
    let (code, _, err) = zofhook(
        &["--data-dir", d, "register", "--url", "https://x.test/"],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("register needs ZofApiBaseUrl"), "{err}");
    let (code, _, err) = zofhook(
        &[
            "--zof-api-base-url",
            &api,
            "--data-dir",
            d,
            "register",
            "--url",
            "https://x.test/",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("register needs the Zof API token"), "{err}");
    let (code, _, err) = register(&api, &["--data-dir", d], &["--events", "run.failed,,x"]);
    assert_eq!(code, 2);
    assert!(err.contains("--events: an empty event type"), "{err}");
    let mut args = vec!["--zof-api-base-url", &api, "--zof-api-token", "t"];
    args.extend(["register", "--url", "ftp://x.test/"]);
    let (code, _, err) = zofhook(&args, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("is not an http(s) URL"), "{err}");
    let (code, _, err) = register(&api, &["--aws"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("give --secret-id"), "{err}");
    assert!(fake.seen("/v1/webhooks").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_aws_the_secret_goes_to_the_stacks_secret_with_the_old_one_as_previous() {
    let sdk = e2e::sdk().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let old = r#"{"current":"whsec_b2xkLXN0YWNr","previous":""}"#;
    let arn = e2e::create_secret(&sm, "zofhook-register", old).await;
    let fake = Fake::default();
    fake.script(
        "/v1/webhooks",
        vec![],
        answer(201, json!({"id": "wh_aws", "secret": NEW_SECRET})),
    );
    let api = fake.start().await;
    let mut args = vec!["--zof-api-base-url", api.as_str(), "--zof-api-token", "t"];
    args.extend(["--aws", "register", "--url", "https://hooks.example.test/"]);
    args.extend(["--secret-id", &arn, "--yes"]);
    let (code, out, err) = zofhook(&args, &e2e::aws_env());
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Registered webhook wh_aws"), "{out}");
    assert!(
        out.contains(&format!("stored in the stack's secret {arn}")),
        "{out}"
    );
    let stored = sm
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .unwrap()
        .secret_string()
        .unwrap()
        .to_string();
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(
        stored,
        json!({"current": NEW_SECRET, "previous": "whsec_b2xkLXN0YWNr"})
    );
    // The receiver's parser reads what was stored, both secrets active.
    let secrets = zofhook_core::secrets::parse_stored(&stored.to_string()).unwrap();
    assert!(secrets.previous.is_some());

    // A secret id that does not exist: an error, nothing stored anywhere.
    let mut args = vec!["--zof-api-base-url", api.as_str(), "--zof-api-token", "t"];
    args.extend(["--aws", "register", "--url", "https://hooks.example.test/"]);
    args.extend(["--secret-id", "zofhook-no-such-secret", "--yes"]);
    let (code, _, err) = zofhook(&args, &e2e::aws_env());
    assert_eq!(code, 2);
    assert!(err.contains("cannot read zofhook-no-such-secret"), "{err}");
    assert!(err.contains("nothing was stored"), "{err}");
}
