//! Every setting of the pipeline: its stack parameter, environment variable, default, what it
//! accepts, and its parsing. Read once at start-up; a bad value stops the program with a message
//! naming the setting.
//!
//! The same names serve the Lambdas (environment set by template.yaml) and `zofhook` (flags and
//! `ZOFHOOK_*` variables): a flag is the parameter in kebab case, the variable `ZOFHOOK_` + upper
//! snake case.

use crate::signature::{KeyReading, Scheme, SecretEncoding, SecretError, Secrets};
use http::HeaderName;
use std::time::Duration;

/// One setting: where it comes from and what it accepts.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Stack parameter name, e.g. `OrganizationId`.
    pub param: &'static str,
    /// Default as text; empty means unset.
    pub default: &'static str,
    /// What values it takes: the parsing and the `accepts` text both come from here.
    pub kind: Kind,
    pub help: &'static str,
}

/// What a setting takes (ripgrep's `flags/defs.rs` is the pattern: one declaration per flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number from `min` to `max`, of `unit` (empty for a count).
    Number {
        min: u64,
        max: u64,
        unit: &'static str,
    },
    /// One of these words.
    Choice(&'static [&'static str]),
    /// An `http://` or `https://` URL, or empty, which means `empty`.
    Url { empty: &'static str },
    /// Text with a rule of its own, in words.
    Text(&'static str),
}

impl Setting {
    /// `ZOFHOOK_` + upper snake case of the parameter name.
    pub fn env(&self) -> String {
        format!("ZOFHOOK_{}", snake(self.param).to_uppercase())
    }

    /// The parameter name in kebab case, as a CLI flag without the dashes.
    pub fn flag(&self) -> String {
        snake(self.param).replace('_', "-")
    }

    /// What the setting accepts, in words: start-up errors, `--help` and the README table.
    pub fn accepts(&self) -> String {
        match self.kind {
            Kind::Number { min, max, unit: "" } => format!("a whole number from {min} to {max}"),
            Kind::Number { min, max, unit } => {
                format!("a whole number of {unit} from {min} to {max}")
            }
            Kind::Choice(words) => format!("one of {}", words.join(", ")),
            Kind::Url { empty } => format!("an http:// or https:// URL, or empty {empty}"),
            Kind::Text(words) => words.to_string(),
        }
    }

    /// Whether a value (trimmed, not empty) is of the setting's kind; a `Text` setting's own
    /// rule is checked where it is parsed.
    fn check(&self, raw: &str) -> Result<(), ConfigError> {
        let ok = match self.kind {
            Kind::Number { min, max, .. } => {
                raw.parse::<u64>().is_ok_and(|n| (min..=max).contains(&n))
            }
            Kind::Choice(words) => words.contains(&raw),
            Kind::Url { .. } => {
                (raw.starts_with("http://") || raw.starts_with("https://"))
                    && raw.len() > "https://".len()
                    && !raw.contains(char::is_whitespace)
            }
            Kind::Text(_) => true,
        };
        if ok {
            Ok(())
        } else {
            Err(ConfigError::new(self, format!("{raw:?} is not accepted")))
        }
    }
}

fn snake(param: &str) -> String {
    let mut out = String::new();
    for (i, c) in param.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

macro_rules! settings {
    ($($name:ident = $param:literal, $default:literal, $kind:expr, $help:literal;)*) => {
        $(pub const $name: Setting = Setting { param: $param, default: $default, kind: $kind, help: $help };)*
        /// Every tunable setting of the pipeline, in README order.
        pub const SETTINGS: &[Setting] = &[$($name),*];
    };
}

settings! {
    SIGNATURE_SCHEME = "SignatureScheme", "hmac-sha256",
        Kind::Choice(&["hmac-sha256", "timestamped", "standard-webhooks"]),
        "How Zof signs deliveries; only this scheme is accepted.";
    SECRET_ENCODING = "SecretEncoding", "auto",
        Kind::Choice(&["auto", "base64", "utf8"]),
        "How a secret becomes the HMAC key: auto follows the scheme's senders (standard-webhooks: base64 after whsec_; timestamped and hmac-sha256: the string's UTF-8 bytes).";
    SIGNATURE_HEADER = "SignatureHeader", "Zof-Signature",
        Kind::Text("an HTTP header name"),
        "Header that carries the signature (hmac-sha256 and timestamped).";
    SIGNATURE_TOLERANCE_SECONDS = "SignatureToleranceSeconds", "300",
        Kind::Number { min: 1, max: 86400, unit: "seconds" },
        "Largest accepted clock difference for timestamped schemes.";
    EVENT_TYPES = "EventTypes", "run.completed",
        Kind::Text("a comma-separated list of event types, or *"),
        "Event types that are recorded and processed; others are answered `ignored`.";
    MAX_BODY_BYTES = "MaxBodyBytes", "262144",
        Kind::Number { min: 1, max: 262144, unit: "bytes" },
        "Largest accepted body (the SQS message limit).";
    ORGANIZATION_ID = "OrganizationId", "",
        Kind::Text("a Zof organization id, or empty for any"),
        "When set, events of any other organization are refused with 403.";
    DEDUPE_RETENTION_DAYS = "DedupeRetentionDays", "30",
        Kind::Number { min: 1, max: 3650, unit: "days" },
        "How long an event id is remembered (ledger TTL).";
    RECEIVE_LEASE_SECONDS = "ReceiveLeaseSeconds", "30",
        Kind::Number { min: 1, max: 3600, unit: "seconds" },
        "How long a delivery in flight holds its id before another delivery may take it over.";
    PROCESSING_LEASE_SECONDS = "ProcessingLeaseSeconds", "360",
        Kind::Number { min: 1, max: 43200, unit: "seconds" },
        "How long the worker holds an event it is processing (the queue's visibility timeout).";
    RESPONSE_DEADLINE_MS = "ResponseDeadlineMs", "8000",
        Kind::Number { min: 100, max: 9500, unit: "milliseconds" },
        "The receiver answers within this time, whatever the store does.";
    STORE_TIMEOUT_MS = "StoreTimeoutMs", "2000",
        Kind::Number { min: 50, max: 9000, unit: "milliseconds" },
        "Timeout of one ledger or queue call, retries included.";
    STORE_MAX_ATTEMPTS = "StoreMaxAttempts", "3",
        Kind::Number { min: 1, max: 10, unit: "" },
        "Attempts per ledger or queue call within its timeout.";
    ZOF_API_BASE_URL = "ZofApiBaseUrl", "",
        Kind::Url { empty: "to skip reconciliation" },
        "Zof API the worker asks for the run's state (GET /v1/runs/{run_id}).";
    NOTIFY_URL = "NotifyUrl", "",
        Kind::Url { empty: "for none" },
        "Where the worker POSTs a notification for each processed event.";
    NOTIFY_FORMAT = "NotifyFormat", "json",
        Kind::Choice(&["json", "slack"]),
        "Body of the notification: the JSON of docs/design.md, or Slack's {\"text\": …}.";
    EVENT_BUS_NAME = "EventBusName", "",
        Kind::Text("an EventBridge bus name, or empty for none"),
        "EventBridge bus that gets one entry per processed event.";
    DOWNSTREAM_TIMEOUT_MS = "DownstreamTimeoutMs", "5000",
        Kind::Number { min: 100, max: 60000, unit: "milliseconds" },
        "Timeout of one call to the Zof API, the notify URL or EventBridge.";
    DOWNSTREAM_MAX_ATTEMPTS = "DownstreamMaxAttempts", "3",
        Kind::Number { min: 1, max: 10, unit: "" },
        "Attempts per downstream call (backoff with jitter, Retry-After honoured).";
    METRICS_NAMESPACE = "MetricsNamespace", "ZofWebhooks",
        Kind::Text("a CloudWatch namespace: 1-255 letters, digits and . - _ / # :"),
        "Namespace of the Embedded Metric Format metrics the functions print.";
    MAX_RECEIVE_COUNT = "MaxReceiveCount", "10",
        Kind::Number { min: 1, max: 1000, unit: "" },
        "Receives of a message before it is dead-lettered (10 with the default backoff: about 1 h 15 min of retries).";
    RETRY_BASE_SECONDS = "RetryBaseSeconds", "30",
        Kind::Number { min: 1, max: 43200, unit: "seconds" },
        "A failed event comes back after about this long, then twice as long each time (with jitter).";
    RETRY_MAX_SECONDS = "RetryMaxSeconds", "900",
        Kind::Number { min: 1, max: 43200, unit: "seconds" },
        "Longest wait between two attempts at a failed event; not less than RetryBaseSeconds.";
}

/// Where the AWS deployment's resources are; read by the Lambdas only.
pub const TABLE_NAME_ENV: &str = "ZOFHOOK_TABLE_NAME";
pub const QUEUE_URL_ENV: &str = "ZOFHOOK_QUEUE_URL";
pub const SECRET_ARN_ENV: &str = "ZOFHOOK_SECRET_ARN";
/// Webhook secrets given directly (local runs and tests).
pub const SECRET_ENV: &str = "ZOFHOOK_SECRET";
pub const PREVIOUS_SECRET_ENV: &str = "ZOFHOOK_PREVIOUS_SECRET";
/// The Zof API token: given directly (local), or the ARN of its Secrets Manager secret (AWS).
pub const ZOF_API_TOKEN_ENV: &str = "ZOFHOOK_ZOF_API_TOKEN";
pub const ZOF_API_TOKEN_ARN_ENV: &str = "ZOFHOOK_ZOF_API_TOKEN_ARN";

/// The body format of the notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyFormat {
    Json,
    Slack,
}

/// A setting with a value it does not accept.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{env} ({param}): {problem}; it accepts {accepts}")]
pub struct ConfigError {
    pub env: String,
    pub param: String,
    pub problem: String,
    pub accepts: String,
}

impl ConfigError {
    fn new(setting: &Setting, problem: String) -> ConfigError {
        ConfigError {
            env: setting.env(),
            param: setting.param.to_string(),
            problem,
            accepts: setting.accepts(),
        }
    }

    /// A required variable that is not a tunable setting (resource names, secrets).
    pub fn required(env: &str, accepts: &str) -> ConfigError {
        ConfigError {
            env: env.to_string(),
            param: env.to_string(),
            problem: "missing or empty".to_string(),
            accepts: accepts.to_string(),
        }
    }
}

/// Which event types are recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventTypes {
    All,
    Only(Vec<String>),
}

impl EventTypes {
    pub fn admits(&self, kind: &str) -> bool {
        match self {
            EventTypes::All => true,
            EventTypes::Only(list) => list.iter().any(|t| t == kind),
        }
    }
}

/// The parsed settings of the receive and process pipelines.
#[derive(Debug, Clone)]
pub struct Config {
    pub scheme: Scheme,
    pub secret_encoding: SecretEncoding,
    pub signature_header: HeaderName,
    pub tolerance_seconds: u64,
    pub event_types: EventTypes,
    pub max_body_bytes: usize,
    pub organization_id: Option<String>,
    pub retention_days: u64,
    pub receive_lease: Duration,
    pub processing_lease: Duration,
    pub response_deadline: Duration,
    pub store_timeout: Duration,
    pub store_max_attempts: u32,
    pub max_receive_count: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub metrics_namespace: String,
    pub zof_api_base_url: Option<String>,
    pub notify_url: Option<String>,
    pub notify_format: NotifyFormat,
    pub event_bus_name: Option<String>,
    pub downstream_timeout: Duration,
    pub downstream_max_attempts: u32,
}

impl Default for Config {
    fn default() -> Config {
        // The defaults are valid by construction; the test `defaults_parse` proves it.
        Config::from_lookup(|_| None).unwrap_or_else(|e| panic!("invalid default: {e}"))
    }
}

impl Config {
    /// Reads every setting from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads every setting through `lookup` (an environment variable name → its value).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let text = |s: &Setting| -> String {
            lookup(&s.env())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| s.default.to_string())
        };
        let number = |s: &Setting| -> Result<u64, ConfigError> {
            let raw = text(s);
            s.check(&raw)?;
            raw.parse::<u64>()
                .map_err(|_| ConfigError::new(s, format!("{raw:?} is not accepted")))
        };
        let choice = |s: &Setting| -> Result<String, ConfigError> {
            let raw = text(s);
            s.check(&raw)?;
            Ok(raw)
        };

        let raw = choice(&SIGNATURE_SCHEME)?;
        let scheme = raw
            .parse::<Scheme>()
            .map_err(|_| ConfigError::new(&SIGNATURE_SCHEME, format!("{raw:?} is not a scheme")))?;
        let raw = choice(&SECRET_ENCODING)?;
        let secret_encoding = raw
            .parse::<SecretEncoding>()
            .map_err(|_| ConfigError::new(&SECRET_ENCODING, format!("{raw:?} is not accepted")))?;
        let raw = text(&SIGNATURE_HEADER);
        let signature_header = HeaderName::from_bytes(raw.as_bytes()).map_err(|_| {
            ConfigError::new(&SIGNATURE_HEADER, format!("{raw:?} is not a header name"))
        })?;
        let raw = text(&EVENT_TYPES);
        let event_types = if raw == "*" {
            EventTypes::All
        } else {
            let list: Vec<String> = raw
                .split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect();
            if list.is_empty()
                || list
                    .iter()
                    .any(|t| t == "*" || t.contains(char::is_whitespace))
            {
                return Err(ConfigError::new(
                    &EVENT_TYPES,
                    format!("{raw:?} is not accepted"),
                ));
            }
            EventTypes::Only(list)
        };
        let url = |s: &Setting| -> Result<Option<String>, ConfigError> {
            let raw = text(s);
            if raw.is_empty() {
                return Ok(None);
            }
            s.check(&raw)?;
            Ok(Some(raw.trim_end_matches('/').to_string()))
        };
        let notify_format = match choice(&NOTIFY_FORMAT)?.as_str() {
            "json" => NotifyFormat::Json,
            "slack" => NotifyFormat::Slack,
            other => {
                return Err(ConfigError::new(
                    &NOTIFY_FORMAT,
                    format!("{other:?} is not accepted"),
                ))
            }
        };
        let bus = text(&EVENT_BUS_NAME);
        if bus.len() > 256
            || !bus
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
        {
            return Err(ConfigError::new(
                &EVENT_BUS_NAME,
                format!("{bus:?} is not accepted"),
            ));
        }
        let org = text(&ORGANIZATION_ID);
        let namespace = text(&METRICS_NAMESPACE);
        if namespace.len() > 255
            || !namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c))
        {
            return Err(ConfigError::new(
                &METRICS_NAMESPACE,
                format!("{namespace:?} is not accepted"),
            ));
        }
        let receive_lease = Duration::from_secs(number(&RECEIVE_LEASE_SECONDS)?);
        let response_deadline = Duration::from_millis(number(&RESPONSE_DEADLINE_MS)?);
        // A delivery still at work after its lease could see a second delivery take its id over:
        // two `accepted` for one event.
        if receive_lease <= response_deadline {
            return Err(ConfigError::new(
                &RECEIVE_LEASE_SECONDS,
                format!(
                    "{} s is not longer than ResponseDeadlineMs ({} ms)",
                    receive_lease.as_secs(),
                    response_deadline.as_millis()
                ),
            ));
        }
        let retry_base = Duration::from_secs(number(&RETRY_BASE_SECONDS)?);
        let retry_max = Duration::from_secs(number(&RETRY_MAX_SECONDS)?);
        if retry_max < retry_base {
            return Err(ConfigError::new(
                &RETRY_MAX_SECONDS,
                format!(
                    "{} s is less than RetryBaseSeconds ({} s)",
                    retry_max.as_secs(),
                    retry_base.as_secs()
                ),
            ));
        }
        Ok(Config {
            scheme,
            secret_encoding,
            signature_header,
            tolerance_seconds: number(&SIGNATURE_TOLERANCE_SECONDS)?,
            event_types,
            max_body_bytes: number(&MAX_BODY_BYTES)? as usize,
            organization_id: (!org.is_empty()).then_some(org),
            retention_days: number(&DEDUPE_RETENTION_DAYS)?,
            receive_lease,
            processing_lease: Duration::from_secs(number(&PROCESSING_LEASE_SECONDS)?),
            response_deadline,
            store_timeout: Duration::from_millis(number(&STORE_TIMEOUT_MS)?),
            store_max_attempts: number(&STORE_MAX_ATTEMPTS)? as u32,
            max_receive_count: number(&MAX_RECEIVE_COUNT)? as u32,
            retry_base,
            retry_max,
            metrics_namespace: namespace,
            zof_api_base_url: url(&ZOF_API_BASE_URL)?,
            notify_url: url(&NOTIFY_URL)?,
            notify_format,
            event_bus_name: (!bus.is_empty()).then_some(bus),
            downstream_timeout: Duration::from_millis(number(&DOWNSTREAM_TIMEOUT_MS)?),
            downstream_max_attempts: number(&DOWNSTREAM_MAX_ATTEMPTS)? as u32,
        })
    }

    /// The retry backoff of failed events (`RetryBaseSeconds`, `RetryMaxSeconds`).
    pub fn backoff(&self) -> crate::backoff::Backoff {
        crate::backoff::Backoff {
            base: self.retry_base,
            max: self.retry_max,
        }
    }

    /// How secrets become keys under this deployment's scheme.
    pub fn key_reading(&self) -> KeyReading {
        self.secret_encoding.reading(self.scheme)
    }

    /// Seconds an event id is remembered.
    pub fn retention_seconds(&self) -> i64 {
        (self.retention_days * 86_400) as i64
    }
}

/// A required, non-empty variable.
pub fn required(
    lookup: impl Fn(&str) -> Option<String>,
    env: &str,
    accepts: &str,
) -> Result<String, ConfigError> {
    lookup(env)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ConfigError::required(env, accepts))
}

/// The webhook secrets from `ZOFHOOK_SECRET` and `ZOFHOOK_PREVIOUS_SECRET`; missing or empty
/// current secret is an error (fail closed).
pub fn secrets_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
    reading: KeyReading,
) -> Result<Secrets, ConfigError> {
    let current = required(
        &lookup,
        SECRET_ENV,
        "the webhook secret from Zof's Admin Center",
    )?;
    let previous = lookup(PREVIOUS_SECRET_ENV);
    Secrets::parse(&current, previous.as_deref())
        .and_then(|s| s.check(reading).map(|()| s))
        .map_err(|e| secret_error(e, &current, reading))
}

fn secret_error(e: SecretError, current: &str, reading: KeyReading) -> ConfigError {
    // Name which secret is wrong without ever echoing it.
    let current_ok = crate::signature::Secret::parse(current)
        .and_then(|s| s.check(reading))
        .is_ok();
    let env = if current_ok {
        PREVIOUS_SECRET_ENV
    } else {
        SECRET_ENV
    };
    ConfigError {
        env: env.to_string(),
        param: env.to_string(),
        problem: e.to_string(),
        accepts: "a non-empty secret; read as base64 (SecretEncoding), standard base64 after an optional whsec_"
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_parse() {
        let c = with(&[]).unwrap();
        assert_eq!(c.scheme, Scheme::HmacSha256);
        assert_eq!(c.signature_header.as_str(), "zof-signature");
        assert_eq!(c.tolerance_seconds, 300);
        assert_eq!(
            c.event_types,
            EventTypes::Only(vec!["run.completed".into()])
        );
        assert_eq!(c.max_body_bytes, 262_144);
        assert_eq!(c.organization_id, None);
        assert_eq!(c.retention_seconds(), 30 * 86_400);
        assert_eq!(c.response_deadline, Duration::from_secs(8));
    }

    #[test]
    fn names_follow_the_design_rule() {
        assert_eq!(ORGANIZATION_ID.env(), "ZOFHOOK_ORGANIZATION_ID");
        assert_eq!(ORGANIZATION_ID.flag(), "organization-id");
        assert_eq!(MAX_BODY_BYTES.env(), "ZOFHOOK_MAX_BODY_BYTES");
    }

    #[test]
    fn values_are_read() {
        let c = with(&[
            ("ZOFHOOK_SIGNATURE_SCHEME", "standard-webhooks"),
            ("ZOFHOOK_EVENT_TYPES", "run.completed, run.started"),
            ("ZOFHOOK_ORGANIZATION_ID", "org_1"),
            ("ZOFHOOK_MAX_BODY_BYTES", "1024"),
        ])
        .unwrap();
        assert_eq!(c.scheme, Scheme::StandardWebhooks);
        assert!(c.event_types.admits("run.started"));
        assert!(!c.event_types.admits("run.created"));
        assert_eq!(c.organization_id.as_deref(), Some("org_1"));
        assert_eq!(c.max_body_bytes, 1024);
        assert!(with(&[("ZOFHOOK_EVENT_TYPES", "*")])
            .unwrap()
            .event_types
            .admits("x"));
    }

    #[test]
    fn bad_values_name_the_setting() {
        for (env, value) in [
            ("ZOFHOOK_SIGNATURE_SCHEME", "md5"),
            ("ZOFHOOK_SIGNATURE_HEADER", "bad header"),
            ("ZOFHOOK_SIGNATURE_TOLERANCE_SECONDS", "-1"),
            ("ZOFHOOK_MAX_BODY_BYTES", "0"),
            ("ZOFHOOK_MAX_BODY_BYTES", "300000"),
            ("ZOFHOOK_DEDUPE_RETENTION_DAYS", "thirty"),
            ("ZOFHOOK_EVENT_TYPES", ",,"),
            ("ZOFHOOK_RESPONSE_DEADLINE_MS", "10000"),
            ("ZOFHOOK_ZOF_API_BASE_URL", "ftp://zof"),
            ("ZOFHOOK_NOTIFY_URL", "hooks.slack.com/x"),
            ("ZOFHOOK_NOTIFY_FORMAT", "xml"),
            ("ZOFHOOK_EVENT_BUS_NAME", "bad bus"),
            ("ZOFHOOK_RETRY_BASE_SECONDS", "0"),
            ("ZOFHOOK_SECRET_ENCODING", "hex"),
            ("ZOFHOOK_RETRY_MAX_SECONDS", "50000"),
        ] {
            let err = with(&[(env, value)]).unwrap_err();
            assert_eq!(err.env, env);
            assert!(err.to_string().starts_with(env), "{err}");
            assert!(err.to_string().contains("accepts"), "{err}");
        }
    }

    #[test]
    fn settings_that_would_break_the_guarantee_are_refused() {
        // A receive lease no longer than the response deadline: a slow delivery's id could be
        // taken over while it is still answering.
        let err = with(&[
            ("ZOFHOOK_RECEIVE_LEASE_SECONDS", "8"),
            ("ZOFHOOK_RESPONSE_DEADLINE_MS", "8000"),
        ])
        .unwrap_err();
        assert_eq!(err.env, "ZOFHOOK_RECEIVE_LEASE_SECONDS");
        assert!(err.to_string().contains("ResponseDeadlineMs"), "{err}");
        assert!(with(&[
            ("ZOFHOOK_RECEIVE_LEASE_SECONDS", "9"),
            ("ZOFHOOK_RESPONSE_DEADLINE_MS", "8000"),
        ])
        .is_ok());
        let err = with(&[
            ("ZOFHOOK_RETRY_BASE_SECONDS", "60"),
            ("ZOFHOOK_RETRY_MAX_SECONDS", "30"),
        ])
        .unwrap_err();
        assert_eq!(err.env, "ZOFHOOK_RETRY_MAX_SECONDS");
    }

    #[test]
    fn retries_back_off_within_about_30_s_and_span_over_an_hour_by_default() {
        let c = with(&[]).unwrap();
        for _ in 0..200 {
            let first = c.backoff().delay(1);
            assert!(first <= Duration::from_secs(30), "{first:?}");
            assert!(first >= Duration::from_secs(24), "{first:?}");
            assert!(c.backoff().delay(40) <= Duration::from_secs(900));
            // The waits between the receives before the DLQ, at their shortest.
            let window: Duration = (1..c.max_receive_count).map(|n| c.backoff().delay(n)).sum();
            assert!(window >= Duration::from_secs(3600), "{window:?}");
        }
        let second = c.backoff().delay(2);
        assert!(second > Duration::from_secs(30) && second <= Duration::from_secs(60));
    }

    #[test]
    fn secrets_fail_closed_without_echoing() {
        let none: HashMap<&str, &str> = HashMap::new();
        let err = secrets_from_lookup(|k| none.get(k).map(|v| v.to_string()), KeyReading::Utf8)
            .unwrap_err();
        assert_eq!(err.env, SECRET_ENV);
        let bad = secrets_from_lookup(
            |k| match k {
                SECRET_ENV => Some("Z29vZC1vbmU=".into()),
                PREVIOUS_SECRET_ENV => Some("whsec_%%%secretbits".into()),
                _ => None,
            },
            KeyReading::Base64,
        )
        .unwrap_err();
        assert_eq!(bad.env, PREVIOUS_SECRET_ENV);
        assert!(!bad.to_string().contains("secretbits"));
        assert!(secrets_from_lookup(
            |k| (k == SECRET_ENV).then(|| "s".to_string()),
            KeyReading::Utf8
        )
        .is_ok());
    }
}
