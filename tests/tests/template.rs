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
