//! template.yaml, config.rs and the README agree: every setting is a parameter with the same
//! default, the functions get exactly the variables the code reads, and every parameter is used.

use e2e::template::Template;
use std::collections::{HashMap, HashSet};
use zofhook_core::config::{self, Kind, SETTINGS};

/// Settings that reach a resource rather than a function's environment.
const RESOURCE_SETTINGS: &[(&str, &str)] = &[("MaxReceiveCount", "the queue's RedrivePolicy")];

/// Settings the stack derives from another parameter instead of taking as one (so that no
/// combination breaks a rule AWS enforces): the setting and what it comes from.
const DERIVED_SETTINGS: &[(&str, &str)] = &[("ProcessingLeaseSeconds", "WorkerTimeoutSeconds")];

#[test]
fn every_setting_is_a_parameter_with_the_same_default() {
    let template = Template::load();
    let params: HashMap<String, Option<String>> = template.parameters().into_iter().collect();
    for s in SETTINGS {
        if let Some((_, from)) = DERIVED_SETTINGS.iter().find(|(p, _)| *p == s.param) {
            assert!(!params.contains_key(s.param), "{} is derived", s.param);
            assert!(params.contains_key(*from));
            // Derived from the default, it is the setting's default.
            let env = template.stack(&[]).env("WorkerFunction");
            assert!(
                env.contains(&(s.env(), s.default.to_string())),
                "{} from {from}'s default",
                s.param
            );
            continue;
        }
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
        // The "accepts" cell says what the setting's kind says: a number's range first, a
        // choice's words, a URL as one.
        let accepts = row.split('|').nth(3).unwrap().trim();
        match s.kind {
            Kind::Number { min, max, .. } => assert!(
                accepts.starts_with(&format!("{min}–{max}")),
                "README range of {}: {accepts}, config.rs says {min}–{max}",
                s.param
            ),
            Kind::Choice(words) => assert_eq!(
                accepts,
                words
                    .iter()
                    .map(|w| format!("`{w}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                "README choices of {}",
                s.param
            ),
            Kind::Url { .. } => assert!(accepts.contains("URL"), "{}: {accepts}", s.param),
            Kind::Text(_) => assert!(!accepts.is_empty(), "{}", s.param),
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
            let out = e2e::stdout_of(
                std::process::Command::new(&python)
                    .arg(root.join("infra/sam-roles.py"))
                    .arg(root.join("template.yaml"))
                    .arg(format!("EndpointType={endpoint}"))
                    .arg(format!("EnableTracing={tracing}")),
            );
            let roles: Value = serde_json::from_slice(&out).unwrap();
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
/// one AWS publishes for the resource it points at; and the dashboard shows what
/// docs/design.md section 9 lists.
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
        collect("worker", worker.message("evt_1", &handled, 1.0, 0));
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

/// What AWS enforces, or the pipeline needs, of one set of parameter values: each rule of
/// docs/aws-rules.md that parameters can break, by its name there.
mod aws_rules {
    use e2e::template::Stack;
    use zofhook_core::config::Config;
    use zofhook_core::downstream::{ERROR_MAX_BYTES, OUTCOME_MAX_BYTES};

    /// What the rules read, evaluated from the template for one set of values.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub struct Effective {
        pub worker_timeout: u64,
        pub receiver_timeout: u64,
        pub visibility: u64,
        pub batch_size: u64,
        pub batching_window: u64,
        pub max_receive_count: u64,
        pub retry_max: u64,
        pub retention: u64,
        pub dlq_retention: u64,
        pub zof_api_url: String,
        pub zof_api_token_arn: String,
        pub max_body: u64,
        pub response_deadline_ms: u64,
    }

    impl Effective {
        pub fn of(stack: &Stack) -> Effective {
            let worker = stack.env("WorkerFunction");
            let var = |name: &str| {
                worker
                    .iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let num = |name: &str| var(name).parse::<u64>().unwrap();
            let sqs = ["Events", "Queue", "Properties"];
            Effective {
                worker_timeout: stack.number("WorkerFunction", &["Timeout"]),
                receiver_timeout: stack.number("ReceiverFunction", &["Timeout"]),
                visibility: stack.number("EventQueue", &["VisibilityTimeout"]),
                batch_size: stack.number("WorkerFunction", &[sqs[0], sqs[1], sqs[2], "BatchSize"]),
                batching_window: stack.number(
                    "WorkerFunction",
                    &[sqs[0], sqs[1], sqs[2], "MaximumBatchingWindowInSeconds"],
                ),
                max_receive_count: stack
                    .number("EventQueue", &["RedrivePolicy", "maxReceiveCount"]),
                retry_max: num("ZOFHOOK_RETRY_MAX_SECONDS"),
                retention: stack.number("EventQueue", &["MessageRetentionPeriod"]),
                dlq_retention: stack.number("DeadLetterQueue", &["MessageRetentionPeriod"]),
                zof_api_url: var("ZOFHOOK_ZOF_API_BASE_URL"),
                zof_api_token_arn: var("ZOFHOOK_ZOF_API_TOKEN_ARN"),
                max_body: num("ZOFHOOK_MAX_BODY_BYTES"),
                response_deadline_ms: num("ZOFHOOK_RESPONSE_DEADLINE_MS"),
            }
        }
    }

    /// The rules of docs/aws-rules.md this checker evaluates: [`broken`]'s, and `config`
    /// ([`config_starts`]).
    pub const RULES: &[&str] = &[
        "trigger-visibility",
        "sqs-visibility-limit",
        "batch-window",
        "batch-size",
        "zof-api-token",
        "receives",
        "retention",
        "lambda-timeout",
        "integration-timeout",
        "sqs-message-size",
        "lambda-payload",
        "item-size",
        "config",
    ];

    /// The rules these values break, by name.
    pub fn broken(e: &Effective) -> Vec<&'static str> {
        let mut broken = Vec::new();
        let mut rule = |name: &'static str, holds: bool| {
            assert!(RULES.contains(&name), "{name} is not in RULES");
            if !holds {
                broken.push(name);
            }
        };
        // CreateEventSourceMapping refuses a queue whose visibility timeout is shorter than the
        // function's timeout; AWS advises 6 times it.
        rule(
            "trigger-visibility",
            e.visibility >= e.worker_timeout.saturating_mul(6),
        );
        rule(
            "sqs-visibility-limit",
            e.visibility <= 43_200 && e.retry_max <= 43_200,
        );
        rule("batch-window", e.batch_size <= 10 || e.batching_window >= 1);
        rule("batch-size", (1..=10_000).contains(&e.batch_size));
        rule(
            "zof-api-token",
            e.zof_api_url.is_empty() || !e.zof_api_token_arn.is_empty(),
        );
        rule("receives", e.max_receive_count >= 3);
        // A message's retention runs from its first send, in the dead-letter queue too: the
        // longest retries end within half of it.
        let longest = e.max_receive_count * e.retry_max.max(e.visibility);
        rule(
            "retention",
            longest <= e.retention / 2 && longest <= e.dlq_retention / 2,
        );
        rule(
            "lambda-timeout",
            (1..=900).contains(&e.worker_timeout) && (1..=900).contains(&e.receiver_timeout),
        );
        rule(
            "integration-timeout",
            e.response_deadline_ms < e.receiver_timeout * 1000 && e.receiver_timeout < 29,
        );
        rule("sqs-message-size", e.max_body <= 262_144);
        // A function URL or API Gateway hands the body base64-encoded, with its headers.
        rule(
            "lambda-payload",
            e.max_body.div_ceil(3) * 4 + 65_536 <= 6 * 1024 * 1024,
        );
        // The body, the bounded outcome and error, and the rest of the record (ids, hashes,
        // times: under 4 KiB).
        rule(
            "item-size",
            e.max_body + (OUTCOME_MAX_BYTES + ERROR_MAX_BYTES + 4_096) as u64 <= 400 * 1024,
        );
        broken
    }

    /// Whether each function's settings start it (a function that cannot read its settings
    /// answers nothing), or the first error.
    pub fn config_starts(stack: &Stack) -> Result<(), String> {
        for function in ["ReceiverFunction", "WorkerFunction"] {
            let env = stack.env(function);
            Config::from_lookup(|k| {
                env.iter()
                    .rev()
                    .find(|(name, _)| name == k)
                    .map(|(_, v)| v.clone())
            })
            .map_err(|e| format!("{function}: {e}"))?;
        }
        Ok(())
    }
}

/// The parameters the rules of docs/aws-rules.md read, and the value an empty-by-default text
/// takes besides empty.
const RULE_PARAMETERS: &[(&str, Option<&str>)] = &[
    ("WorkerTimeoutSeconds", None),
    ("WorkerBatchSize", None),
    ("WorkerBatchingWindowSeconds", None),
    ("ZofApiBaseUrl", Some("https://api.zof.example")),
    ("ZofApiToken", Some("zof_token")),
    ("MaxReceiveCount", None),
    ("RetryBaseSeconds", None),
    ("RetryMaxSeconds", None),
    ("ReceiveLeaseSeconds", None),
    ("ResponseDeadlineMs", None),
    ("StoreTimeoutMs", None),
    ("MaxBodyBytes", None),
];

/// What only AWS enforces (docs/aws-rules.md): every combination of the extreme values of the
/// parameters the rules read (every allowed value of a list; minimum and maximum of a number;
/// empty and set for a text), and the defaults, is either refused by the template's `Rules`
/// before anything deploys, or deploys a stack that breaks no rule and whose functions start.
#[test]
fn no_combination_of_extreme_parameters_breaks_an_aws_rule() {
    let template = Template::load();
    let axes: Vec<(&str, Vec<String>)> = RULE_PARAMETERS
        .iter()
        .map(|(name, set)| {
            let mut values = template.extremes(name);
            values.extend(set.map(str::to_string));
            (*name, values)
        })
        .collect();
    let total: usize = axes.iter().map(|(_, v)| v.len()).product::<usize>() + 1;
    let (mut refused, mut deployed) = (HashMap::<String, usize>::new(), 0usize);
    let mut failures = Vec::new();
    let mut starts = HashMap::new();
    for n in 0..total {
        let mut rest = n;
        // The last one is the defaults.
        let values: Vec<(&str, String)> = if n + 1 == total {
            Vec::new()
        } else {
            axes.iter()
                .map(|(name, vals)| {
                    let v = vals[rest % vals.len()].clone();
                    rest /= vals.len();
                    (*name, v)
                })
                .collect()
        };
        let stack = template.stack(&values);
        assert_eq!(stack.out_of_range(), None, "{values:?}");
        if let Some(rule) = stack.refused_by() {
            *refused.entry(rule).or_default() += 1;
            continue;
        }
        deployed += 1;
        let effective = aws_rules::Effective::of(&stack);
        let broken = aws_rules::broken(&effective);
        if !broken.is_empty() && failures.len() < 10 {
            failures.push(format!("{values:?} breaks {broken:?}: {effective:?}"));
        }
        // The settings' validity depends on these values only (the others are defaults).
        let key: Vec<String> = values
            .iter()
            .filter(|(k, _)| !k.starts_with("WorkerBatch") && *k != "MaxReceiveCount")
            .map(|(_, v)| v.clone())
            .collect();
        let started = starts
            .entry(key)
            .or_insert_with(|| aws_rules::config_starts(&stack));
        if let Err(e) = started {
            if failures.len() < 10 {
                failures.push(format!("{values:?}: a function cannot start: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The rules did refuse something, and most combinations deploy.
    assert!(
        refused.contains_key("BatchAboveTenNeedsAWindow")
            && refused.contains_key("ZofApiNeedsItsToken"),
        "{refused:?}"
    );
    assert!(deployed > total / 2, "{deployed} of {total}");
    eprintln!("{total} combinations: {deployed} deploy and break no rule, refused: {refused:?}");
}

/// The checker bites: the combinations a review of the old template found (every one allowed by
/// its parameters then) each break their rule, and today's template refuses or excludes them.
#[test]
fn the_combinations_aws_rejects_are_refused_or_impossible() {
    use aws_rules::{broken, Effective};
    let template = Template::load();
    let defaults = Effective::of(&template.stack(&[]));
    assert!(broken(&defaults).is_empty(), "{defaults:?}");
    let bad = [
        // WorkerTimeoutSeconds 60 with ProcessingLeaseSeconds 18.
        (
            Effective {
                visibility: 18,
                ..defaults.clone()
            },
            "trigger-visibility",
        ),
        (
            Effective {
                batch_size: 10_000,
                batching_window: 0,
                ..defaults.clone()
            },
            "batch-window",
        ),
        (
            Effective {
                zof_api_url: "https://api.zof.example".into(),
                ..defaults.clone()
            },
            "zof-api-token",
        ),
        (
            Effective {
                max_receive_count: 1000,
                retry_max: 900,
                ..defaults.clone()
            },
            "retention",
        ),
        (
            Effective {
                max_receive_count: 2,
                ..defaults.clone()
            },
            "receives",
        ),
        (
            Effective {
                max_body: 300_000,
                ..defaults.clone()
            },
            "sqs-message-size",
        ),
    ];
    for (effective, rule) in bad {
        assert!(broken(&effective).contains(&rule), "{rule}: {effective:?}");
    }
    // Today: the lease is derived, so no parameter sets it apart from the timeout …
    assert!(!template
        .parameters()
        .iter()
        .any(|(p, _)| p == "ProcessingLeaseSeconds"));
    // … the Rules refuse the batch and the token …
    let s = |v: &[(&str, &str)]| {
        template.stack(
            &v.iter()
                .map(|(k, v)| (*k, v.to_string()))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        s(&[
            ("WorkerBatchSize", "10000"),
            ("WorkerBatchingWindowSeconds", "0")
        ])
        .refused_by(),
        Some("BatchAboveTenNeedsAWindow".into())
    );
    assert_eq!(
        s(&[
            ("WorkerBatchSize", "10000"),
            ("WorkerBatchingWindowSeconds", "1")
        ])
        .refused_by(),
        None
    );
    assert_eq!(
        s(&[("ZofApiBaseUrl", "https://api.zof.example")]).refused_by(),
        Some("ZofApiNeedsItsToken".into())
    );
    // … and the ranges exclude the receive counts and retries.
    for (param, value) in [
        ("MaxReceiveCount", "1000"),
        ("MaxReceiveCount", "2"),
        ("RetryMaxSeconds", "43200"),
        ("RetryMaxSeconds", "1"),
        ("ReceiveLeaseSeconds", "5"),
    ] {
        assert_eq!(
            s(&[(param, value)]).out_of_range(),
            Some(param.to_string()),
            "{param}={value}"
        );
    }
}

/// docs/aws-rules.md has a row for every rule the checker above evaluates, and every test a row
/// names exists.
#[test]
fn every_aws_rule_has_a_row_and_every_row_a_test() {
    let root = e2e::root();
    let doc = std::fs::read_to_string(root.join("docs/aws-rules.md")).unwrap();
    let rows: Vec<Vec<&str>> = doc
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.split(" | ").collect())
        .collect();
    let named: Vec<&str> = rows
        .iter()
        .map(|r| r[0].trim_start_matches("| ").trim_matches('`'))
        .collect();
    for rule in aws_rules::RULES {
        assert!(
            named.contains(rule),
            "docs/aws-rules.md has no row for {rule}"
        );
    }
    assert!(rows.len() >= 17, "{named:?}");
    for row in &rows {
        let tests = row
            .last()
            .unwrap()
            .trim_end_matches(" |")
            .trim_end_matches('|');
        let mut found = 0;
        for test in tests.split(", ") {
            let test = test.trim().trim_matches('`');
            let (file, function) = test
                .split_once("::")
                .unwrap_or_else(|| panic!("{}: {test:?} is not file::function", row[0]));
            let path = [
                root.join("tests/tests").join(file),
                root.join("crates/core/src").join(file),
            ]
            .into_iter()
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{}: no file {file}", row[0]));
            let source = std::fs::read_to_string(path).unwrap();
            assert!(
                source.contains(&format!("fn {function}()")),
                "{}: {file} has no test {function}",
                row[0]
            );
            found += 1;
        }
        assert!(found > 0, "{} names no test", row[0]);
    }
}

/// The two branches of `LedgerTable`'s `!If [KeepDayIndex, keep, drop]` at `key`.
fn ledger_if_branches(key: &str) -> (Vec<serde_yaml::Value>, Vec<serde_yaml::Value>) {
    let text = std::fs::read_to_string(e2e::root().join("template.yaml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let node = &doc["Resources"]["LedgerTable"]["Properties"][key];
    let serde_yaml::Value::Tagged(tagged) = node else {
        panic!("LedgerTable {key} is not an !If: {node:?}")
    };
    assert_eq!(tagged.tag.to_string(), "!If");
    let args = tagged.value.as_sequence().unwrap();
    assert_eq!(args[0].as_str(), Some("KeepDayIndex"));
    (
        args[1].as_sequence().unwrap().clone(),
        args[2].as_sequence().unwrap().clone(),
    )
}

/// CloudFormation adds or deletes only one global secondary index per update (the emulator and
/// the linters do not know it). The upgrade from `by_day` to `by_time` (README) is therefore two
/// deployments: `LegacyDayIndex=Keep` adds `by_time` beside `by_day`, then `Drop` deletes
/// `by_day`. Each branch must differ from the other by exactly that one index, with `by_time`
/// defined alike in both, and the attributes only `by_day` keys on kept out of `Drop`.
#[test]
fn the_time_index_upgrade_changes_one_index_per_deployment() {
    let (keep, drop) = ledger_if_branches("GlobalSecondaryIndexes");
    let name = |i: &serde_yaml::Value| i["IndexName"].as_str().unwrap().to_string();
    assert_eq!(drop.iter().map(name).collect::<Vec<_>>(), ["by_time"]);
    assert_eq!(
        keep.iter().map(name).collect::<Vec<_>>(),
        ["by_time", "by_day"]
    );
    assert_eq!(
        keep[0], drop[0],
        "by_time differs between the two deployments"
    );
    assert_eq!(
        drop[0]["Projection"]["ProjectionType"].as_str(),
        Some("KEYS_ONLY")
    );
    let keys = |i: &serde_yaml::Value| -> Vec<String> {
        i["KeySchema"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|k| k["AttributeName"].as_str().unwrap().to_string())
            .collect()
    };
    use zofhook_core::ledger::dynamodb::{SHARD_KEY, TIME_INDEX, TIME_KEY};
    assert_eq!(name(&drop[0]), TIME_INDEX);
    assert_eq!(keys(&drop[0]), [SHARD_KEY, TIME_KEY]);
    let (keep_attrs, drop_attrs) = ledger_if_branches("AttributeDefinitions");
    let attr = |a: &serde_yaml::Value| a["AttributeName"].as_str().unwrap().to_string();
    let drop_names: HashSet<String> = drop_attrs.iter().map(attr).collect();
    let keep_names: HashSet<String> = keep_attrs.iter().map(attr).collect();
    let mut indexed: HashSet<String> = keys(&drop[0]).into_iter().collect();
    indexed.insert("id".into());
    assert_eq!(drop_names, indexed, "Drop defines exactly the keys in use");
    let mut with_day = indexed.clone();
    with_day.extend(keys(&keep[1]));
    assert_eq!(keep_names, with_day, "Keep defines by_day's keys too");
}
