//! The stack's `OperatorPolicy` (output `OperatorPolicyArn`) holds exactly what `zofhook --aws`
//! needs for `events`, `replay`, `redrive` and `listen` (the console makes the same calls): an
//! IAM user with only that policy runs every one of them against an emulator that enforces IAM;
//! and with any one of its actions taken out, a command that needs it is refused.
//!
//! The emulator here is a moto server of this test's own, with IAM enforcement switched on
//! (`/moto-api/reset-auth`) once the users exist, so the other tests' emulator is not affected.
//! Moto checks SQS actions against the queues' ARNs, so the template's SQS resources are used as
//! written. It checks DynamoDB actions against `*` only (it does not work out a table's ARN), so
//! the DynamoDB statements' resources become `*` here; their actions are still checked one by
//! one. The resources themselves are the template's: `template.rs` reads them.

use e2e::template::Template;
use e2e::{root, unique, Emulator, REGION};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::process::{Command, Stdio};

/// Runs Python (the emulator's venv, with boto3) against the emulator as `keys`; its stdout as
/// JSON.
fn python(emulator: &Emulator, keys: &Value, script: &str, input: &Value) -> Value {
    let out = e2e::stdout_of(
        Command::new(root().join(".venv/bin/python"))
            .args(["-c", script, &emulator.url, &input.to_string()])
            .env("AWS_ACCESS_KEY_ID", keys["id"].as_str().unwrap())
            .env("AWS_SECRET_ACCESS_KEY", keys["secret"].as_str().unwrap())
            .env("AWS_DEFAULT_REGION", REGION),
    );
    serde_json::from_slice(&out).unwrap()
}

/// The policy document of the template's `OperatorPolicy` for these resources, without `drop`.
fn policy(queue_arn: &str, dlq_arn: &str, drop: Option<&str>) -> Value {
    let statements: Vec<Value> = Template::load()
        .policy_statements("OperatorPolicy")
        .into_iter()
        .filter_map(|(actions, resource)| {
            let actions: Vec<String> = actions
                .into_iter()
                .filter(|a| Some(a.as_str()) != drop)
                .collect();
            let resource = match resource.as_str() {
                "EventQueue.Arn" => queue_arn.to_string(),
                "DeadLetterQueue.Arn" => dlq_arn.to_string(),
                r if r.contains("LedgerTable.Arn") => "*".to_string(),
                other => panic!("OperatorPolicy names a resource this test does not know: {other}"),
            };
            (!actions.is_empty())
                .then(|| json!({"Effect": "Allow", "Action": actions, "Resource": resource}))
        })
        .collect();
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// `zofhook --aws <args>` as `keys` on the emulator, not started.
fn command_as(
    emulator: &Emulator,
    keys: &Value,
    names: &(String, String, String),
    args: &[&str],
) -> Command {
    let (table, queue, dlq) = names;
    let mut command = Command::new(e2e::binary("zofhook"));
    command
        .args([
            "--aws",
            "--table-name",
            table,
            "--queue-url",
            queue,
            "--dlq-url",
            dlq,
        ])
        .args(args)
        .env("AWS_ENDPOINT_URL", &emulator.url)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", keys["id"].as_str().unwrap())
        .env("AWS_SECRET_ACCESS_KEY", keys["secret"].as_str().unwrap())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null());
    command
}

/// `zofhook --aws <args>` as `keys` on the emulator: (exit code, stdout + stderr).
fn zofhook_as(
    emulator: &Emulator,
    keys: &Value,
    names: &(String, String, String),
    args: &[&str],
) -> (i32, String) {
    let out = command_as(emulator, keys, names, args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Every operator command, in order: (what, arguments).
const COMMANDS: &[(&str, &[&str])] = &[
    (
        "events list",
        &["events", "list", "--since", "1h", "--json"],
    ),
    (
        "events show",
        &["events", "show", "evt_operator_0", "--json"],
    ),
    ("replay", &["replay", "evt_operator_0"]),
    ("redrive", &["redrive"]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_policy_holds_exactly_what_the_aws_commands_need() {
    let emulator = Emulator::start(&[]);
    // Before enforcement: the table, the queues, a failed event with its body, dead letters,
    // and one user per policy (the template's, and the template's less each action).
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&emulator.url)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "emulator",
        ))
        .load()
        .await;
    let (dynamodb, table) = e2e::create_table(&sdk).await;
    let (sqs, queue) = e2e::create_queue(&sdk).await;
    let (_, dlq) = e2e::create_queue(&sdk).await;
    let arn = |url: String| {
        let sqs = sqs.clone();
        async move {
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .send()
                .await
                .unwrap()
                .attributes()
                .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
                .cloned()
                .unwrap()
        }
    };
    let (queue_arn, dlq_arn) = (arn(queue.clone()).await, arn(dlq.clone()).await);
    let ledger = zofhook_core::ledger::dynamodb::DynamoLedger::new(dynamodb, table.clone());
    let body = String::from_utf8(e2e::event("evt_operator_0", "org_a", "run_1")).unwrap();
    let record = e2e::failed_record("evt_operator_0", &body, "run_1", "down");
    zofhook_core::ledger::Ledger::begin(&ledger, &record, zofhook_core::now_ms())
        .await
        .unwrap();
    for i in 0..20 {
        sqs.send_message()
            .queue_url(&dlq)
            .message_body(format!("{{\"id\":\"evt_dead_{i}\"}}"))
            .send()
            .await
            .unwrap();
    }
    let actions: BTreeSet<String> = Template::load()
        .policy_statements("OperatorPolicy")
        .into_iter()
        .flat_map(|(actions, _)| actions)
        .collect();
    assert!(actions.len() >= 5, "{actions:?}");
    // The template's policy, then the template's less each action, then an administrator (the
    // test's own hand, to put dead letters back after the first redrive).
    let mut documents = vec![policy(&queue_arn, &dlq_arn, None)];
    for action in &actions {
        documents.push(policy(&queue_arn, &dlq_arn, Some(action)));
    }
    documents.push(json!({"Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}));
    let emulator_keys = json!({"id": "testing", "secret": "testing"});
    let users = python(
        &emulator,
        &emulator_keys,
        "import boto3, json, sys\n\
         iam = boto3.client('iam', endpoint_url=sys.argv[1])\n\
         out = []\n\
         for i, document in enumerate(json.loads(sys.argv[2])):\n\
         \x20   name = f'operator-{i}'\n\
         \x20   iam.create_user(UserName=name)\n\
         \x20   iam.put_user_policy(UserName=name, PolicyName='operator', PolicyDocument=json.dumps(document))\n\
         \x20   key = iam.create_access_key(UserName=name)['AccessKey']\n\
         \x20   out.append({'id': key['AccessKeyId'], 'secret': key['SecretAccessKey']})\n\
         print(json.dumps(out))",
        &Value::Array(documents),
    );
    let users = users.as_array().unwrap();
    let (operator, without, admin) = (
        &users[0],
        &users[1..=actions.len()],
        &users[actions.len() + 1],
    );
    // From now on every call is authenticated and authorized.
    let enforced = reqwest::Client::new()
        .post(format!("{}/moto-api/reset-auth", emulator.url))
        .body("0")
        .send()
        .await
        .unwrap();
    assert!(enforced.status().is_success());
    let names = (table, queue, dlq);
    let nobody = json!({"id": unique("AKIANOBODY"), "secret": "x"});
    let (code, out) = zofhook_as(&emulator, &nobody, &names, COMMANDS[1].1);
    assert_ne!(code, 0, "an unknown key was let in: {out}");

    // The template's policy: every command works.
    for (what, args) in COMMANDS {
        let (code, out) = zofhook_as(&emulator, operator, &names, args);
        assert_eq!(code, 0, "{what} with the OperatorPolicy: {out}");
        if *what == "redrive" {
            assert!(out.contains("moved 20 "), "{out}");
        }
    }
    // `listen --replayed` reads the time index (records and replay notes) and the records: with
    // the policy alone it starts, and it forwards the replay made above.
    let handler = e2e::fake::Fake::default();
    handler.script("/hook", vec![], e2e::fake::answer(200, json!({})));
    let hook = format!("{}/hook", handler.start().await);
    let local = "whsec_b3BlcmF0b3ItbG9jYWwtc2VjcmV0";
    let listen_args = [
        "--secret",
        local,
        "listen",
        "--replayed",
        "--forward-to",
        &hook,
    ];
    let mut listen = command_as(&emulator, operator, &names, &listen_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The replay comes after the ready line: listen forwards what happens after its start.
    let mut stdout = std::io::BufReader::new(listen.stdout.take().unwrap());
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut ready).unwrap();
    assert!(
        ready.starts_with("Forwarding events accepted from"),
        "{ready:?}"
    );
    let (code, out) = zofhook_as(&emulator, operator, &names, &["replay", "evt_operator_0"]);
    assert_eq!(code, 0, "replay with the OperatorPolicy: {out}");
    let started = std::time::Instant::now();
    while handler.seen("/hook").is_empty() {
        if let Some(status) = listen.try_wait().unwrap() {
            let out = listen.wait_with_output().unwrap();
            panic!(
                "listen with the OperatorPolicy exited ({status}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(90),
            "listen --replayed did not forward the replay"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let _ = listen.kill();
    let _ = listen.wait();
    // Dead letters again, for the redrives below.
    python(
        &emulator,
        admin,
        "import boto3, json, sys\n\
         sqs = boto3.client('sqs', endpoint_url=sys.argv[1])\n\
         for i in range(5):\n\
         \x20   sqs.send_message(QueueUrl=json.loads(sys.argv[2]), MessageBody='{\"id\":\"evt_dead\"}')\n\
         print('[]')",
        &json!(names.2),
    );
    // Each action taken out: the commands run in order until one is refused by the policy, and
    // one must be.
    for (action, keys) in actions.iter().zip(without) {
        let refused = COMMANDS.iter().find_map(|(what, args)| {
            let (code, out) = zofhook_as(&emulator, keys, &names, args);
            (code != 0).then(|| {
                assert!(
                    out.contains("AccessDenied") || out.contains("not authorized"),
                    "without {action}, {what} failed otherwise: {out}"
                );
                *what
            })
        });
        let refused = refused.unwrap_or_else(|| {
            panic!("without {action} every operator command still works: the action is not needed")
        });
        eprintln!("without {action}: {refused} refused");
    }
}
