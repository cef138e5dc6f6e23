//! The real `receiver` and `worker` binaries, driven through the Lambda Runtime API with the
//! environment template.yaml gives them, against the AWS API emulator.

use base64::Engine;
use e2e::lambda::{http_api, Function};
use e2e::template::Template;
use e2e::{binary, create_queue, create_table, event, sdk, sign};
use serde_json::{json, Value};
use std::collections::HashMap;
use zofhook_core::ledger::dynamodb::DynamoLedger;
use zofhook_core::ledger::{Ledger, Status};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Stack {
    ledger: DynamoLedger,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    receiver_env: Vec<(String, String)>,
    worker_env: Vec<(String, String)>,
}

/// The stack's data resources in the emulator, and each function's environment from the template.
async fn stack(overrides: &[(&'static str, &str)]) -> Stack {
    let sdk = sdk().await;
    let (dynamo, table) = create_table(&sdk).await;
    let (sqs, queue_url) = create_queue(&sdk).await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let stored = format!(r#"{{"current":"{SECRET}","previous":""}}"#);
    let secret_arn = e2e::create_secret(&secrets, "webhook", &stored).await;
    let token_arn = e2e::create_secret(&secrets, "zof-api-token", "tok_from_secrets_manager").await;
    let resources: HashMap<&str, String> = HashMap::from([
        ("LedgerTable", table.clone()),
        ("EventQueue", queue_url.clone()),
        ("WebhookSecretValue", secret_arn),
        ("ZofApiTokenSecret", token_arn),
    ]);
    let overrides: HashMap<&str, String> =
        overrides.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let template = Template::load();
    let aws: Vec<(String, String)> = e2e::aws_env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let with_aws = |mut env: Vec<(String, String)>| {
        env.extend(aws.iter().cloned());
        env
    };
    Stack {
        ledger: DynamoLedger::new(dynamo, table),
        sqs,
        queue_url,
        receiver_env: with_aws(template.function_env("ReceiverFunction", &resources, &overrides)),
        worker_env: with_aws(template.function_env("WorkerFunction", &resources, &overrides)),
    }
}

/// A Lambda function URL request (also payload format 2.0, with its own request context).
fn function_url(headers: Value, body: &str, base64: bool) -> Value {
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous", "apiId": "urlid", "domainName": "urlid.lambda-url.us-east-1.on.aws",
            "domainPrefix": "urlid", "requestId": "r2", "routeKey": "$default", "stage": "$default",
            "time": "20/May/2026:12:00:00 +0000", "timeEpoch": 1779278400000u64,
            "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "Zof-Webhooks/1.0"}
        },
        "body": body, "isBase64Encoded": base64
    })
}

fn signed_headers(body: &[u8]) -> Value {
    let (name, value) = sign(SECRET, body);
    json!({ "content-type": "application/json", name: value })
}

/// A signed `POST /webhook` through the HTTP API.
fn signed_delivery(body: &[u8]) -> Value {
    let text = std::str::from_utf8(body).unwrap();
    http_api("POST", signed_headers(body), text, false)
}

fn status_and_body(response: &Value) -> (i64, Value) {
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    (response["statusCode"].as_i64().unwrap(), body)
}

/// An SQS event as the event source mapping delivers it.
fn sqs_event(messages: &[(String, String)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1779278400000",
                               "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1779278400001"},
                "messageAttributes": {}, "md5OfBody": "0", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:events", "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

#[tokio::test]
async fn a_signed_event_is_recorded_enqueued_claimed_and_processed() {
    let s = stack(&[]).await;
    let receiver = Function::start(&binary("receiver"), "receiver", &s.receiver_env).await;
    let body = event("evt_e2e_1", "org_a", "run_1");
    let text = String::from_utf8(body.clone()).unwrap();

    let response = receiver.invoke(signed_delivery(&body)).await.unwrap();
    assert_eq!(
        status_and_body(&response),
        (200, json!({"status": "accepted", "id": "evt_e2e_1"}))
    );
    assert_eq!(response["headers"]["content-type"], "application/json");
    assert_eq!(
        s.ledger.get("evt_e2e_1").await.unwrap().unwrap().status,
        Status::Enqueued
    );

    // Zof delivers it again to the same environment: a duplicate, and nothing more is queued
    // (an id this process began lately puts first). Another environment's copy is below.
    let again = receiver.invoke(signed_delivery(&body)).await.unwrap();
    assert_eq!(
        status_and_body(&again),
        (200, json!({"status": "duplicate", "id": "evt_e2e_1"}))
    );
    let elsewhere = Function::start(&binary("receiver"), "receiver-2", &s.receiver_env).await;
    let third = elsewhere.invoke(signed_delivery(&body)).await.unwrap();
    assert_eq!(
        status_and_body(&third),
        (200, json!({"status": "duplicate", "id": "evt_e2e_1"}))
    );
    // That environment sent beside its refused put: a copy of the same event.
    let messages = e2e::drain(&s.sqs, &s.queue_url).await;
    assert_eq!(messages.len(), 2);
    assert!(messages.iter().all(|m| m.body().unwrap() == text));

    let worker = Function::start(&binary("worker"), "worker", &s.worker_env).await;
    let batch = sqs_event(&[(messages[0].message_id().unwrap().to_string(), text.clone())]);
    let result = worker.invoke(batch.clone()).await.unwrap();
    assert_eq!(result["batchItemFailures"], json!([]));
    let record = s.ledger.get("evt_e2e_1").await.unwrap().unwrap();
    assert_eq!(record.status, Status::Processed);
    assert_eq!(
        record.outcome,
        Some(json!({"status": "unknown", "run": null, "sinks": {}}))
    );
    assert!(record.processed_at.is_some());

    // The duplicate delivery's copy, and the same message delivered twice by SQS: each is
    // acknowledged and skipped.
    let copy = sqs_event(&[(messages[1].message_id().unwrap().to_string(), text.clone())]);
    let result = worker.invoke(copy).await.unwrap();
    assert_eq!(result["batchItemFailures"], json!([]));
    let result = worker.invoke(batch).await.unwrap();
    assert_eq!(result["batchItemFailures"], json!([]));
    let logs = worker.logs().await.join("\n");
    assert!(logs.contains("already_processed"), "{logs}");
    assert!(logs.contains(r#""AlreadyProcessed":1"#), "{logs}");

    // One JSON log line per delivery, with id, verdict and duration; never the secret or body.
    let logs = receiver.logs().await;
    let delivery_lines: Vec<Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "delivery")
        .collect();
    assert_eq!(delivery_lines.len(), 2, "{logs:?}");
    assert_eq!(delivery_lines[0]["event_id"], "evt_e2e_1");
    assert_eq!(delivery_lines[0]["verdict"], "accepted");
    assert!(delivery_lines[0]["duration_ms"].is_number());
    // One Embedded Metric Format line per delivery.
    let emf: Vec<Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert_eq!(emf.len(), 2, "{logs:?}");
    assert_eq!(
        (emf[0]["Accepted"].as_i64(), emf[1]["Duplicate"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "ZofWebhooks"
    );
    let all = logs.join("\n");
    assert!(!all.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    assert!(!all.contains("res_1"), "bodies are not logged");
}

#[tokio::test]
async fn function_url_events_and_base64_bodies() {
    let s = stack(&[]).await;
    let receiver = Function::start(&binary("receiver"), "receiver", &s.receiver_env).await;
    let body = event("evt_e2e_b64", "org_a", "run_1");
    let encoded = base64::engine::general_purpose::STANDARD.encode(&body);
    let response = receiver
        .invoke(function_url(signed_headers(&body), &encoded, true))
        .await
        .unwrap();
    assert_eq!(
        status_and_body(&response),
        (200, json!({"status": "accepted", "id": "evt_e2e_b64"}))
    );
    // A body that is not base64 is a 400, and the function lives on.
    let response = receiver
        .invoke(function_url(signed_headers(&body), "%%not-base64%%", true))
        .await
        .unwrap();
    assert_eq!(
        status_and_body(&response),
        (
            400,
            json!({"error": "invalid_event", "detail": "body is not valid base64"})
        )
    );
    let response = receiver
        .invoke(http_api("POST", signed_headers(&body), "%%", true))
        .await
        .unwrap();
    assert_eq!(status_and_body(&response).0, 400);
    assert_eq!(e2e::drain(&s.sqs, &s.queue_url).await.len(), 1);
}

#[tokio::test]
async fn rejections_through_the_binary_store_nothing() {
    let s = stack(&[("OrganizationId", "org_a")]).await;
    let receiver = Function::start(&binary("receiver"), "receiver", &s.receiver_env).await;
    let body = event("evt_e2e_rej", "org_a", "run_1");
    let text = String::from_utf8(body.clone()).unwrap();
    let cases = [
        (
            http_api("GET", signed_headers(&body), &text, false),
            405,
            json!({"error": "method_not_allowed"}),
        ),
        (
            http_api(
                "POST",
                json!({"content-type": "application/json", "zof-signature": format!("sha256={}", "0".repeat(64))}),
                &text,
                false,
            ),
            401,
            json!({"error": "invalid_signature"}),
        ),
        (
            http_api(
                "POST",
                json!({"content-type": "application/json"}),
                &text,
                false,
            ),
            401,
            json!({"error": "invalid_signature"}),
        ),
        (
            http_api(
                "POST",
                json!({"content-type": "text/plain", "zof-signature": sign(SECRET, &body).1}),
                &text,
                false,
            ),
            415,
            json!({"error": "unsupported_media_type"}),
        ),
    ];
    for (request, status, want) in cases {
        let response = receiver.invoke(request).await.unwrap();
        assert_eq!(status_and_body(&response), (status, want));
    }
    let other_org = event("evt_e2e_org", "org_b", "run_1");
    let text = String::from_utf8(other_org.clone()).unwrap();
    let response = receiver
        .invoke(http_api("POST", signed_headers(&other_org), &text, false))
        .await
        .unwrap();
    assert_eq!(
        status_and_body(&response),
        (403, json!({"error": "wrong_organization"}))
    );
    assert_eq!(s.ledger.get("evt_e2e_rej").await.unwrap(), None);
    assert_eq!(s.ledger.get("evt_e2e_org").await.unwrap(), None);
    assert!(e2e::drain(&s.sqs, &s.queue_url).await.is_empty());
}

#[tokio::test]
async fn the_worker_fails_only_the_bad_messages_of_a_batch() {
    let s = stack(&[]).await;
    let worker = Function::start(&binary("worker"), "worker", &s.worker_env).await;
    let good = String::from_utf8(event("evt_e2e_good", "org_a", "run_1")).unwrap();
    let batch = sqs_event(&[
        ("m-bad".into(), "this is not an event".into()),
        ("m-good".into(), good),
        ("m-empty".into(), String::new()),
    ]);
    let result = worker.invoke(batch).await.unwrap();
    assert_eq!(
        result["batchItemFailures"],
        json!([{"itemIdentifier": "m-bad"}, {"itemIdentifier": "m-empty"}])
    );
    assert_eq!(
        s.ledger.get("evt_e2e_good").await.unwrap().unwrap().status,
        Status::Processed
    );
}

#[tokio::test]
async fn the_receiver_fails_closed_without_its_secret() {
    let mut s = stack(&[]).await;
    for (k, v) in s.receiver_env.iter_mut() {
        if k == "ZOFHOOK_SECRET_ARN" {
            *v = "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing".into();
        }
    }
    let receiver = Function::start(&binary("receiver"), "receiver", &s.receiver_env).await;
    let (code, _init, logs) = receiver.exit().await;
    assert_ne!(code, Some(0), "{logs:?}");
    assert!(
        logs.join("\n").contains("receiver cannot start"),
        "{logs:?}"
    );
}

/// The cold-start warm-up only logs a failure: the receiver starts, and the deliveries meet the
/// real error (503, nothing recorded or queued) instead of a start loop.
#[tokio::test]
async fn a_failed_warm_up_does_not_stop_the_start() {
    let mut s = stack(&[]).await;
    for (k, v) in s.receiver_env.iter_mut() {
        match k.as_str() {
            zofhook_core::config::TABLE_NAME_ENV => *v = "no-such-table".into(),
            zofhook_core::config::QUEUE_URL_ENV => {
                *v = format!("{}/123456789012/no-such-queue", e2e::endpoint())
            }
            _ => {}
        }
    }
    let receiver = Function::start(&binary("receiver"), "receiver", &s.receiver_env).await;
    let body = event("evt_warm_up_1", "org_e2e", "run_1");
    let reply = receiver.invoke(signed_delivery(&body)).await.unwrap();
    assert_eq!(status_and_body(&reply).0, 503);
    let logs = receiver.logs().await.join("\n");
    assert!(logs.contains("ledger warm-up failed"), "{logs}");
    assert!(logs.contains("queue warm-up failed"), "{logs}");
    assert!(e2e::drain(&s.sqs, &s.queue_url).await.is_empty());
}

#[tokio::test]
async fn a_bad_setting_in_the_template_stops_the_start_naming_it() {
    let s = stack(&[("MaxBodyBytes", "0")]).await;
    let receiver = Function::start(&binary("receiver"), "receiver", &s.receiver_env).await;
    let (code, _init, logs) = receiver.exit().await;
    assert_ne!(code, Some(0));
    assert!(
        logs.join("\n")
            .contains("ZOFHOOK_MAX_BODY_BYTES (MaxBodyBytes)"),
        "{logs:?}"
    );
}

#[tokio::test]
async fn the_worker_lambda_reconciles_and_notifies_with_the_token_from_secrets_manager() {
    use e2e::fake::{answer, Fake};
    let fake = Fake::default();
    fake.script(
        "/v1/runs/run_7",
        vec![],
        answer(200, json!({"id": "run_7", "state": "canceled"})),
    );
    fake.script("/hook", vec![], answer(200, json!({})));
    let base = fake.start().await;
    let notify = format!("{base}/hook");
    let s = stack(&[
        ("ZofApiBaseUrl", &base),
        ("ZofApiToken", "set"),
        ("NotifyUrl", &notify),
        ("NotifyFormat", "slack"),
    ])
    .await;
    let worker = Function::start(&binary("worker"), "worker", &s.worker_env).await;
    let body = String::from_utf8(event("evt_e2e_ds", "org_a", "run_7")).unwrap();
    let result = worker
        .invoke(sqs_event(&[("m-1".into(), body)]))
        .await
        .unwrap();
    assert_eq!(
        result["batchItemFailures"],
        json!([]),
        "{:?}",
        worker.logs().await
    );
    let record = s.ledger.get("evt_e2e_ds").await.unwrap().unwrap();
    assert_eq!(record.outcome.as_ref().unwrap()["status"], "canceled");
    assert_eq!(
        fake.seen("/v1/runs/run_7")[0].headers["authorization"],
        "Bearer tok_from_secrets_manager"
    );
    let text = fake.seen("/hook")[0].body["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains("*canceled*") && text.contains("run_7"),
        "{text}"
    );
    assert!(!worker
        .logs()
        .await
        .join("\n")
        .contains("tok_from_secrets_manager"));
}

#[tokio::test]
async fn the_worker_lambda_sends_a_failed_message_back_after_the_retry_backoff() {
    use e2e::fake::{answer, Fake};
    let fake = Fake::default();
    // 400 is permanent for the downstream: the attempt fails at once.
    fake.script("/notify", vec![], answer(400, json!({"error": "no"})));
    let notify = format!("{}/notify", fake.start().await);
    // 10 s: long enough that "back at once" cannot pass for "back after the backoff" on a
    // loaded machine.
    let s = stack(&[("RetryBaseSeconds", "10"), ("NotifyUrl", &notify)]).await;
    let body = String::from_utf8(event("evt_e2e_backoff", "org_a", "run_1")).unwrap();
    s.sqs
        .send_message()
        .queue_url(&s.queue_url)
        .message_body(&body)
        .send()
        .await
        .unwrap();
    // Received as the event source mapping would: held for a minute.
    let taken = s
        .sqs
        .receive_message()
        .queue_url(&s.queue_url)
        .visibility_timeout(60)
        .send()
        .await
        .unwrap();
    let message = &taken.messages()[0];
    let mut batch = sqs_event(&[(message.message_id().unwrap().to_string(), body)]);
    batch["Records"][0]["receiptHandle"] = json!(message.receipt_handle().unwrap());

    let worker = Function::start(&binary("worker"), "worker", &s.worker_env).await;
    // The worker sets the backoff during the invocation, so the message cannot be back before
    // this instant plus the backoff: a lower bound that load cannot break.
    let invoked = std::time::Instant::now();
    let result = worker.invoke(batch).await.unwrap();
    assert_eq!(
        result["batchItemFailures"],
        json!([{"itemIdentifier": message.message_id().unwrap()}])
    );
    let record = s.ledger.get("evt_e2e_backoff").await.unwrap().unwrap();
    assert_eq!((record.status, record.attempts), (Status::Failed, 1));
    let receive = |wait: i32| {
        s.sqs
            .receive_message()
            .queue_url(&s.queue_url)
            .wait_time_seconds(wait)
            .send()
    };
    assert!(
        receive(0).await.unwrap().messages().is_empty(),
        "the failed message was back at once, with no backoff"
    );
    // Back after RetryBaseSeconds (10 s, less up to a fifth of jitter, rounded up to whole
    // seconds: at least 8 s), not after the minute it was held for.
    loop {
        if !receive(1).await.unwrap().messages().is_empty() {
            break;
        }
        assert!(
            invoked.elapsed() < std::time::Duration::from_secs(45),
            "the failed message did not come back: {:?}",
            worker.logs().await
        );
    }
    let back = invoked.elapsed();
    assert!(
        back >= std::time::Duration::from_secs(8),
        "back after {back:?}, before its backoff"
    );
}

/// The receiver's front doors (docs/design.md section 10).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Door {
    HttpApi,
    FunctionUrl,
    RestApi,
    Alb,
    AlbMultiValue,
}

/// The event `door` gives the function for a request with these headers (a name may repeat).
fn door_event(
    door: Door,
    method: &str,
    headers: &[(&str, String)],
    body: &str,
    base64: bool,
) -> Value {
    let mut joined = serde_json::Map::new();
    let mut last = serde_json::Map::new();
    let mut multi: serde_json::Map<String, Value> = serde_json::Map::new();
    for (name, value) in headers {
        let name = name.to_string();
        // HTTP APIs and function URLs join a repeated header with commas.
        let joined_value = match joined.get(&name).and_then(Value::as_str) {
            Some(before) => format!("{before},{value}"),
            None => value.clone(),
        };
        joined.insert(name.clone(), json!(joined_value));
        // REST APIs and ALBs put the last value in `headers`, every value in `multiValueHeaders`.
        last.insert(name.clone(), json!(value));
        multi
            .entry(name)
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .unwrap()
            .push(json!(value));
    }
    match door {
        Door::HttpApi => http_api(method, Value::Object(joined), body, base64),
        Door::FunctionUrl => {
            let mut event = function_url(Value::Object(joined), body, base64);
            event["requestContext"]["http"]["method"] = json!(method);
            event
        }
        Door::RestApi => json!({
            "resource": "/webhook", "path": "/webhook", "httpMethod": method,
            "headers": last, "multiValueHeaders": multi,
            "queryStringParameters": null, "multiValueQueryStringParameters": null,
            "pathParameters": null, "stageVariables": null,
            "requestContext": {
                "accountId": "123456789012", "resourceId": "us4z18", "stage": "prod",
                "requestId": "41b45ea3-70b5-11e6-b7bd-69b5aaebc7d9",
                "identity": {"sourceIp": "203.0.113.9", "userAgent": "Zof-Webhooks/1.0"},
                "resourcePath": "/webhook", "httpMethod": method, "apiId": "wt6mne2s9k",
                "path": "/prod/webhook", "protocol": "HTTP/1.1", "requestTimeEpoch": 1779278400000u64
            },
            "body": body, "isBase64Encoded": base64
        }),
        Door::Alb => json!({
            "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/zof/6d0ecf831eec9f09"}},
            "httpMethod": method, "path": "/webhook", "queryStringParameters": {},
            "headers": last, "isBase64Encoded": base64, "body": body
        }),
        Door::AlbMultiValue => json!({
            "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/zof/6d0ecf831eec9f09"}},
            "httpMethod": method, "path": "/webhook", "multiValueQueryStringParameters": {},
            "multiValueHeaders": multi, "isBase64Encoded": base64, "body": body
        }),
    }
}

/// The response's `content-type`, wherever this front door's response shape keeps it.
fn content_type(door: Door, response: &Value) -> Value {
    match door {
        Door::RestApi | Door::AlbMultiValue => {
            response["multiValueHeaders"]["content-type"][0].clone()
        }
        _ => response["headers"]["content-type"].clone(),
    }
}

#[tokio::test]
async fn every_front_door_accepts_dedupes_rejects_and_decodes() {
    let s = stack(&[]).await;
    let receiver = Function::start(&binary("receiver"), "receiver", &s.receiver_env).await;
    let doors = [
        Door::HttpApi,
        Door::FunctionUrl,
        Door::RestApi,
        Door::Alb,
        Door::AlbMultiValue,
    ];
    let mut accepted = 0;
    for door in doors {
        let id = format!("evt_door_{door:?}").to_lowercase();
        let body = event(&id, "org_a", "run_1");
        let text = String::from_utf8(body.clone()).unwrap();
        let (name, value) = sign(SECRET, &body);
        let signed = [
            ("content-type", "application/json".to_string()),
            (name.as_str(), value.clone()),
        ];
        let call = |event: Value| {
            let receiver = &receiver;
            async move { receiver.invoke(event).await.unwrap() }
        };

        let response = call(door_event(door, "POST", &signed, &text, false)).await;
        assert_eq!(
            status_and_body(&response),
            (200, json!({"status": "accepted", "id": id})),
            "{door:?}: {response}"
        );
        assert_eq!(
            content_type(door, &response),
            "application/json",
            "{door:?}: {response}"
        );
        if matches!(door, Door::Alb | Door::AlbMultiValue) {
            assert_eq!(
                response["statusDescription"], "200 OK",
                "{door:?}: {response}"
            );
        }
        accepted += 1;

        let response = call(door_event(door, "POST", &signed, &text, false)).await;
        assert_eq!(
            status_and_body(&response).1["status"],
            "duplicate",
            "{door:?}"
        );

        let forged = [(name.as_str(), format!("sha256={}", "0".repeat(64)))];
        let response = call(door_event(door, "POST", &forged, &text, false)).await;
        assert_eq!(
            status_and_body(&response),
            (401, json!({"error": "invalid_signature"})),
            "{door:?}"
        );
        if matches!(door, Door::Alb | Door::AlbMultiValue) {
            assert_eq!(
                response["statusDescription"], "401 Unauthorized",
                "{door:?}"
            );
        }

        let response = call(door_event(door, "GET", &signed, &text, false)).await;
        assert_eq!(status_and_body(&response).0, 405, "{door:?}");

        // A base64 body (as the front door sends a binary one) is verified on its bytes.
        let b64_id = format!("{id}_b64");
        let b64_body = event(&b64_id, "org_a", "run_1");
        let (_, b64_sig) = sign(SECRET, &b64_body);
        let encoded = base64::engine::general_purpose::STANDARD.encode(&b64_body);
        let response = call(door_event(
            door,
            "POST",
            &[(name.as_str(), b64_sig.clone())],
            &encoded,
            true,
        ))
        .await;
        assert_eq!(
            status_and_body(&response),
            (200, json!({"status": "accepted", "id": b64_id})),
            "{door:?}"
        );
        accepted += 1;

        // A body flagged base64 that is not: a 400, and the function lives on.
        let response = call(door_event(door, "POST", &signed, "%%not base64%%", true)).await;
        assert_eq!(
            status_and_body(&response),
            (
                400,
                json!({"error": "invalid_event", "detail": "body is not valid base64"})
            ),
            "{door:?}"
        );

        // The signature header sent twice, a stale signature first (a rotation): every value
        // reaches the verifier, whichever way the front door carries repeated headers.
        let multi_id = format!("{id}_multi");
        let multi_body = event(&multi_id, "org_a", "run_1");
        let multi_text = String::from_utf8(multi_body.clone()).unwrap();
        let (_, good) = sign(SECRET, &multi_body);
        let (_, stale) = sign("whsec_b2xkLXNlY3JldA==", &multi_body);
        let twice = [(name.as_str(), stale), (name.as_str(), good)];
        let response = call(door_event(door, "POST", &twice, &multi_text, false)).await;
        assert_eq!(
            status_and_body(&response),
            (200, json!({"status": "accepted", "id": multi_id})),
            "{door:?}: {response}"
        );
        accepted += 1;
    }
    // The process never died: one cold start served every door.
    assert_eq!(e2e::drain(&s.sqs, &s.queue_url).await.len(), accepted);
}
