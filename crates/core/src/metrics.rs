//! CloudWatch metrics in Embedded Metric Format: one JSON line per delivery or message, printed
//! on stdout by the Lambdas, turned into metrics by CloudWatch Logs with no API call on the hot
//! path. Dimension `Function`; rejections also by `Reason`.

use crate::process::Handled;
use crate::receive::{Reply, Verdict};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone)]
pub struct Metrics {
    namespace: String,
    function: &'static str,
}

impl Metrics {
    pub fn new(namespace: impl Into<String>, function: &'static str) -> Metrics {
        Metrics {
            namespace: namespace.into(),
            function,
        }
    }

    /// The line for one answered delivery.
    pub fn delivery(&self, reply: &Reply, elapsed_ms: f64, now_ms: i64) -> String {
        let mut counts: Vec<&str> = Vec::new();
        let mut reason = None;
        match reply.verdict {
            Verdict::Accepted => counts.extend(["Accepted", "Enqueued"]),
            Verdict::Duplicate => counts.push("Duplicate"),
            Verdict::Ignored => counts.push("Ignored"),
            other => {
                counts.push("Rejected");
                reason = Some(other.as_str());
                if other == Verdict::Unavailable {
                    counts.push("ServerError");
                }
            }
        }
        self.line(&counts, reason, elapsed_ms, now_ms)
    }

    /// The line for one handled queue message.
    pub fn message(&self, handled: &Handled, elapsed_ms: f64, now_ms: i64) -> String {
        let count = match handled {
            Handled::Processed => "Processed",
            Handled::AlreadyProcessed => "AlreadyProcessed",
            Handled::Dropped => "Dropped",
            Handled::NotYet => "NotYet",
            Handled::Retry(_) => "Failed",
        };
        self.line(&[count], None, elapsed_ms, now_ms)
    }

    fn line(&self, counts: &[&str], reason: Option<&str>, elapsed_ms: f64, now_ms: i64) -> String {
        let mut definitions: Vec<Value> = counts
            .iter()
            .map(|name| json!({"Name": name, "Unit": "Count"}))
            .collect();
        definitions.push(json!({"Name": "Latency", "Unit": "Milliseconds"}));
        let mut dimensions = vec![json!(["Function"])];
        let mut root = Map::new();
        root.insert("Function".into(), json!(self.function));
        if let Some(reason) = reason {
            dimensions.push(json!(["Function", "Reason"]));
            root.insert("Reason".into(), json!(reason));
        }
        for name in counts {
            root.insert((*name).into(), json!(1));
        }
        root.insert("Latency".into(), json!(elapsed_ms));
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": now_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": dimensions,
                    "Metrics": definitions,
                }]
            }),
        );
        Value::Object(root).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Value {
        serde_json::from_str(line).unwrap()
    }

    /// Every metric named in the directive has a number at the root, as EMF requires.
    fn assert_valid_emf(v: &Value) {
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert!(v["_aws"]["Timestamp"].is_i64());
        for m in directive["Metrics"].as_array().unwrap() {
            assert!(v[m["Name"].as_str().unwrap()].is_number(), "{v}");
        }
        for set in directive["Dimensions"].as_array().unwrap() {
            for d in set.as_array().unwrap() {
                assert!(v[d.as_str().unwrap()].is_string(), "{v}");
            }
        }
    }

    #[test]
    fn deliveries_and_messages_are_valid_emf() {
        let m = Metrics::new("ZofWebhooks", "receiver");
        let accepted = parse(&m.delivery(&reply(Verdict::Accepted), 3.5, 1_000));
        assert_valid_emf(&accepted);
        assert_eq!(
            (accepted["Accepted"].as_i64(), accepted["Enqueued"].as_i64()),
            (Some(1), Some(1))
        );
        assert_eq!(
            accepted["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "ZofWebhooks"
        );
        let rejected = parse(&m.delivery(&reply(Verdict::Unavailable), 1.0, 1_000));
        assert_valid_emf(&rejected);
        assert_eq!(rejected["Reason"], "unavailable");
        assert_eq!(rejected["ServerError"], 1);
        let signature = parse(&m.delivery(&reply(Verdict::InvalidSignature), 1.0, 1_000));
        assert_eq!(signature["Reason"], "invalid_signature");
        assert!(signature.get("ServerError").is_none());
        let w = Metrics::new("ZofWebhooks", "worker");
        let failed = parse(&w.message(&Handled::Retry("x".into()), 2.0, 1_000));
        assert_valid_emf(&failed);
        assert_eq!(failed["Failed"], 1);
    }

    fn reply(verdict: Verdict) -> Reply {
        let mut r = Reply::new(verdict);
        r.id = Some("evt_1".into());
        r
    }
}
