//! template.yaml, config.rs and the README agree: every setting is a parameter with the same
//! default, the functions get exactly the variables the code reads, and every parameter is used.

use e2e::template::Template;
use std::collections::{HashMap, HashSet};
use zofhook_core::config::{self, SETTINGS};

/// Settings that reach a resource rather than a function's environment.
const RESOURCE_SETTINGS: &[(&str, &str)] = &[("MaxReceiveCount", "the queue's RedrivePolicy")];

#[test]
fn every_setting_is_a_parameter_with_the_same_default() {
    let template = Template::load();
    let params: HashMap<String, Option<String>> = template.parameters().into_iter().collect();
    for s in SETTINGS {
        let default = params
            .get(s.param)
            .unwrap_or_else(|| panic!("{} is not a template parameter", s.param));
        assert_eq!(
            default.as_deref().unwrap_or(""),
            s.default,
            "default of {}",
            s.param
        );
        assert!(
            template.parameter_attr(s.param, "Description").is_some(),
            "{} has no description",
            s.param
        );
    }
}

#[test]
fn functions_get_exactly_the_variables_the_code_reads() {
    let template = Template::load();
    let settings: HashSet<String> = SETTINGS.iter().map(|s| s.env()).collect();
    let resources = [
        config::TABLE_NAME_ENV,
        config::QUEUE_URL_ENV,
        config::SECRET_ARN_ENV,
        config::ZOF_API_TOKEN_ARN_ENV,
    ];
    for function in ["ReceiverFunction", "WorkerFunction"] {
        for name in template.env_names(function) {
            assert!(
                settings.contains(&name) || resources.contains(&name.as_str()),
                "{function} sets {name}, which the code does not read"
            );
        }
    }
    let receiver: HashSet<String> = template.env_names("ReceiverFunction").into_iter().collect();
    let worker: HashSet<String> = template.env_names("WorkerFunction").into_iter().collect();
    for required in &resources[..3] {
        assert!(
            receiver.contains(*required),
            "the receiver needs {required}"
        );
    }
    assert!(
        !receiver.contains(config::ZOF_API_TOKEN_ARN_ENV),
        "the receiver has no use for the API token"
    );
    assert!(worker.contains(config::ZOF_API_TOKEN_ARN_ENV));
    assert!(worker.contains(config::TABLE_NAME_ENV));
    assert!(
        !worker.contains(config::SECRET_ARN_ENV),
        "the worker has no use for the webhook secret"
    );
    for s in SETTINGS {
        if RESOURCE_SETTINGS.iter().any(|(p, _)| *p == s.param) {
            continue;
        }
        assert!(
            receiver.contains(&s.env()) && worker.contains(&s.env()),
            "{} does not reach the functions",
            s.env()
        );
    }
}

#[test]
fn every_parameter_is_used_and_secrets_are_no_echo() {
    let template = Template::load();
    let used = template.references();
    for (name, _) in template.parameters() {
        assert!(used.contains(&name), "parameter {name} is read by nothing");
    }
    for secret in ["WebhookSecret", "PreviousWebhookSecret", "ZofApiToken"] {
        assert_eq!(
            template.parameter_attr(secret, "NoEcho").as_deref(),
            Some("true")
        );
    }
}

#[test]
fn the_readme_table_agrees_with_config() {
    let readme = std::fs::read_to_string(e2e::root().join("README.md")).unwrap();
    for s in SETTINGS {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", s.param)))
            .unwrap_or_else(|| panic!("{} is not in the README's table", s.param));
        let default_cell = row.split('|').nth(2).unwrap().trim();
        let shown = default_cell.trim_matches('`');
        if s.default.is_empty() {
            assert!(shown.starts_with("(empty"), "{}: {default_cell}", s.param);
        } else {
            assert_eq!(shown, s.default, "README default of {}", s.param);
        }
    }
}

/// The roles the SAM transform really produces (aws-sam-translator, offline, through
/// `infra/sam-roles.py` in the template linters' venv), for every `EndpointType` and both
/// `EnableTracing` values: exactly the policies each function needs, none twice.
#[test]
fn the_transformed_roles_hold_exactly_what_each_function_needs() {
    use serde_json::Value;
    let root = e2e::root();
    let python = root.join(".venv-lint/bin/python");
    assert!(
        python.exists(),
        "{} is missing: `make check-template` (part of `make test`) creates it",
        python.display()
    );
    let basic = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole";
    let xray = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess";
    let sqs_poller = "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole";
    for endpoint in ["HttpApi", "FunctionUrl", "RestApi"] {
        for tracing in ["false", "true"] {
            let out = std::process::Command::new(&python)
                .arg(root.join("infra/sam-roles.py"))
                .arg(root.join("template.yaml"))
                .arg(format!("EndpointType={endpoint}"))
                .arg(format!("EnableTracing={tracing}"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let roles: Value = serde_json::from_slice(&out.stdout).unwrap();
            let case = format!("EndpointType={endpoint} EnableTracing={tracing}");
            let managed = |role: &str| -> Vec<String> {
                roles[role]["managed"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect()
            };
            let actions = |role: &str| -> Vec<String> {
                let mut all: Vec<String> = roles[role]["statements"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|s| s["actions"].as_array().unwrap().clone())
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect();
                all.sort();
                all
            };
            // SAM grants X-Ray whenever `Tracing` is set, PassThrough included (a traced caller's
            // segments are still sent); it must appear once, whatever EnableTracing says.
            let with_xray = |mut list: Vec<&str>| {
                list.push(xray);
                let mut list: Vec<String> = list.into_iter().map(str::to_string).collect();
                list.sort();
                list
            };
            let sorted = |mut list: Vec<String>| {
                list.sort();
                list
            };
            assert_eq!(
                sorted(managed("ReceiverFunctionRole")),
                with_xray(vec![basic]),
                "{case}"
            );
            assert_eq!(
                sorted(managed("WorkerFunctionRole")),
                with_xray(vec![basic, sqs_poller]),
                "{case}"
            );
            assert_eq!(
                actions("ReceiverFunctionRole"),
                [
                    "dynamodb:DeleteItem",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "secretsmanager:GetSecretValue",
                    "sqs:GetQueueAttributes",
                    "sqs:SendMessage"
                ],
                "{case}"
            );
            assert_eq!(
                actions("WorkerFunctionRole"),
                [
                    "dynamodb:GetItem",
                    "dynamodb:UpdateItem",
                    "sqs:ChangeMessageVisibility"
                ],
                "{case}"
            );
            for (name, role) in roles.as_object().unwrap() {
                for statement in role["statements"].as_array().unwrap() {
                    assert!(
                        !statement["resources"]
                            .as_array()
                            .unwrap()
                            .contains(&Value::from("*")),
                        "{case}: {name} allows {statement} on every resource"
                    );
                }
            }
            // The region-wide API Gateway logs role is never made unless asked for
            // (`the_region_wide_api_gateway_role_is_opt_in_and_kept`).
            assert!(roles.get("ApiGatewayCloudWatchRole").is_none(), "{case}");
        }
    }
}

/// Every metric the dashboard names is one the code emits (under its `Function` dimension) or
/// one AWS publishes for the resource it points at; and the dashboard shows what DESIGN.md
/// section 9 lists.
#[test]
fn the_dashboard_names_only_metrics_that_exist() {
    use serde_json::Value;
    use zofhook_core::metrics::Metrics;
    use zofhook_core::process::Handled;
    use zofhook_core::receive::{Reply, Verdict};
    // What the functions really print, for every verdict and every message result.
    let mut emitted: HashSet<(String, String)> = HashSet::new();
    let mut collect = |function: &str, line: String| {
        let v: Value = serde_json::from_str(&line).unwrap();
        for m in v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
        {
            emitted.insert((
                function.to_string(),
                m["Name"].as_str().unwrap().to_string(),
            ));
        }
    };
    let receiver = Metrics::new("ns", "receiver");
    for verdict in [
        Verdict::Accepted,
        Verdict::Duplicate,
        Verdict::Ignored,
        Verdict::MethodNotAllowed,
        Verdict::PayloadTooLarge,
        Verdict::UnsupportedMediaType,
        Verdict::InvalidSignature,
        Verdict::InvalidEvent,
        Verdict::WrongOrganization,
        Verdict::Conflict,
        Verdict::InProgress,
        Verdict::Unavailable,
    ] {
        collect("receiver", receiver.delivery(&Reply::new(verdict), 1.0, 0));
    }
    let worker = Metrics::new("ns", "worker");
    for handled in [
        Handled::Processed,
        Handled::AlreadyProcessed,
        Handled::Retry("x".into()),
    ] {
        collect("worker", worker.message(&handled, 1.0, 0));
    }
    let published: HashMap<&str, (&str, &[&str])> = HashMap::from([
        (
            "AWS/SQS",
            (
                "QueueName",
                &[
                    "ApproximateNumberOfMessagesVisible",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateAgeOfOldestMessage",
                ][..],
            ),
        ),
        (
            "AWS/Lambda",
            (
                "FunctionName",
                &[
                    "Errors",
                    "Throttles",
                    "ConcurrentExecutions",
                    "Duration",
                    "Invocations",
                ][..],
            ),
        ),
    ]);
    let body = Template::load().dashboard_body();
    let mut shown: HashSet<(String, String, String)> = HashSet::new();
    for widget in body["widgets"].as_array().unwrap() {
        for metric in widget["properties"]["metrics"].as_array().unwrap() {
            let m = metric.as_array().unwrap();
            let namespace = m[0].as_str().unwrap();
            let name = m[1].as_str().unwrap().to_string();
            let (dimension, value) = (m[2].as_str().unwrap(), m[3].as_str().unwrap().to_string());
            if namespace == "${MetricsNamespace}" {
                assert_eq!(dimension, "Function");
                assert!(
                    emitted.contains(&(value.clone(), name.clone())),
                    "the dashboard shows {value}/{name}, which no function emits"
                );
            } else {
                let (want_dimension, names) = published.get(namespace).unwrap_or_else(|| {
                    panic!("{namespace} is not a namespace the stack publishes to")
                });
                assert_eq!(dimension, *want_dimension, "{namespace}/{name}");
                assert!(
                    names.contains(&name.as_str()),
                    "AWS publishes no {namespace}/{name}"
                );
            }
            shown.insert((namespace.to_string(), name, value));
        }
    }
    for (namespace, name, value) in [
        ("${MetricsNamespace}", "Accepted", "receiver"),
        ("${MetricsNamespace}", "Duplicate", "receiver"),
        ("${MetricsNamespace}", "Rejected", "receiver"),
        ("${MetricsNamespace}", "ServerError", "receiver"),
        ("${MetricsNamespace}", "Latency", "receiver"),
        ("${MetricsNamespace}", "Processed", "worker"),
        ("${MetricsNamespace}", "Failed", "worker"),
        ("${MetricsNamespace}", "Latency", "worker"),
        (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "${EventQueue.QueueName}",
        ),
        (
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            "${EventQueue.QueueName}",
        ),
        (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "${DeadLetterQueue.QueueName}",
        ),
        ("AWS/Lambda", "Errors", "${ReceiverFunction}"),
        ("AWS/Lambda", "Throttles", "${WorkerFunction}"),
        ("AWS/Lambda", "ConcurrentExecutions", "${ReceiverFunction}"),
    ] {
        assert!(
            shown.contains(&(namespace.into(), name.into(), value.into())),
            "the dashboard does not show {namespace} {name} for {value}"
        );
    }
}

/// The resources template.yaml creates for these parameter values (the SAM translator, offline,
/// conditions evaluated): logical id → `type`, `deletion` (DeletionPolicy) and `properties`.
fn created(assignments: &[&str]) -> serde_json::Value {
    let root = e2e::root();
    let out = std::process::Command::new(root.join(".venv-lint/bin/python"))
        .arg(root.join("infra/sam-roles.py"))
        .arg("--resources")
        .arg(root.join("template.yaml"))
        .args(assignments)
        .output()
        .expect("the lint venv's python (make check-template creates it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What only AWS enforces (docs/aws-rules.md): CloudWatch can publish to the alarm topic. Its
/// key is not the AWS-managed `alias/aws/sns` (whose policy does not let CloudWatch use it and
/// cannot be edited) but one of the stack's, whose policy lets `cloudwatch.amazonaws.com`
/// decrypt and make data keys. Every alarm notifies that topic.
#[test]
fn alarms_can_publish_to_their_encrypted_topic() {
    for endpoint in ["HttpApi", "FunctionUrl", "RestApi"] {
        let stack = created(&[&format!("EndpointType={endpoint}")]);
        let key_id = stack["AlarmTopic"]["properties"]["KmsMasterKeyId"]
            .as_str()
            .unwrap();
        assert!(!key_id.contains("alias/aws/"), "{key_id}");
        let key = &stack[key_id];
        assert_eq!(key["type"], "AWS::KMS::Key", "{key_id}");
        let statements = key["properties"]["KeyPolicy"]["Statement"]
            .as_array()
            .unwrap();
        let cloudwatch = statements
            .iter()
            .find(|s| s["Principal"]["Service"] == "cloudwatch.amazonaws.com")
            .expect("a statement for CloudWatch");
        assert_eq!(cloudwatch["Effect"], "Allow");
        let actions: Vec<&str> = cloudwatch["Action"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(actions.contains(&"kms:Decrypt"), "{actions:?}");
        assert!(actions.contains(&"kms:GenerateDataKey*"), "{actions:?}");
        let alarms: Vec<&String> = stack
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, r)| r["type"] == "AWS::CloudWatch::Alarm")
            .map(|(name, _)| name)
            .collect();
        assert!(alarms.len() >= 5, "{alarms:?}");
        for name in alarms {
            assert_eq!(
                stack[name]["properties"]["AlarmActions"],
                serde_json::json!(["AlarmTopic"]),
                "{name}"
            );
        }
    }
}

/// What only AWS enforces: API Gateway's CloudWatch Logs role is one setting per account and
/// region. The stack sets it only when ApiGatewayCloudWatchRoleArn asks (creating the role, or
/// naming an existing one), keeps what it set when it is deleted, and otherwise leaves the
/// setting alone and the REST stage without access logs.
#[test]
fn the_region_wide_api_gateway_role_is_opt_in_and_kept() {
    let existing = "arn:aws:iam::123456789012:role/existing-apigw-logs";
    for endpoint in ["HttpApi", "FunctionUrl", "RestApi"] {
        for asked in ["", "create", existing] {
            let stack = created(&[
                &format!("EndpointType={endpoint}"),
                &format!("ApiGatewayCloudWatchRoleArn={asked}"),
            ]);
            let case = format!("EndpointType={endpoint} ApiGatewayCloudWatchRoleArn={asked}");
            let sets = endpoint == "RestApi" && !asked.is_empty();
            let account = &stack["ApiGatewayAccount"];
            assert_eq!(!account.is_null(), sets, "{case}");
            assert_eq!(
                !stack["ApiGatewayCloudWatchRole"].is_null(),
                endpoint == "RestApi" && asked == "create",
                "{case}"
            );
            if sets {
                assert_eq!(account["deletion"], "Retain", "{case}");
                let role = account["properties"]["CloudWatchRoleArn"].as_str().unwrap();
                if asked == "create" {
                    assert_eq!(role, "getatt:ApiGatewayCloudWatchRole.Arn", "{case}");
                    assert_eq!(stack["ApiGatewayCloudWatchRole"]["deletion"], "Retain");
                } else {
                    assert_eq!(role, existing, "{case}");
                }
            }
            if endpoint == "RestApi" {
                let logs = &stack["RestStage"]["properties"]["AccessLogSetting"];
                assert_eq!(!logs.is_null(), sets, "{case}");
            }
        }
    }
}
