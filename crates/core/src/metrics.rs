//! CloudWatch metrics in Embedded Metric Format: one JSON line per delivery or message, printed
//! on stdout by the Lambdas, turned into metrics by CloudWatch Logs with no API call on the hot
//! path. Dimension `Function`; rejections also by `Reason`.
//!
//! The same line is the Lambda's log line about the delivery or message: it carries the fields
//! `zofhook serve` logs (`message`, `level`, `event_id`, `verdict` and `status`, or `result` and
//! `reason`, and `duration_ms`), so one line a delivery is written instead of two. Count metrics
//! have no unit (EMF's default), which saves their bytes on every line.

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
        let fields = vec![
            ("message", json!("delivery")),
            ("event_id", json!(reply.id.as_deref().unwrap_or(""))),
            ("verdict", json!(reply.verdict.as_str())),
            ("status", json!(reply.status())),
        ];
        self.line(&counts, reason, elapsed_ms, now_ms, fields)
    }

    /// The line for one handled queue message of event `event_id` (empty when the message is
    /// not an event).
    pub fn message(
        &self,
        event_id: &str,
        handled: &Handled,
        elapsed_ms: f64,
        now_ms: i64,
    ) -> String {
        let count = match handled {
            Handled::Processed => "Processed",
            Handled::AlreadyProcessed => "AlreadyProcessed",
            Handled::Dropped => "Dropped",
            Handled::NotYet => "NotYet",
            Handled::Retry(_) => "Failed",
        };
        let mut fields = vec![
            ("message", json!("message")),
            ("event_id", json!(event_id)),
            ("result", json!(handled.as_str())),
        ];
        // Why a message is retried; the others need no reason.
        if let Handled::Retry(why) = handled {
            fields.push(("reason", json!(why)));
        }
        self.line(&[count], None, elapsed_ms, now_ms, fields)
    }

    fn line(
        &self,
        counts: &[&str],
        reason: Option<&str>,
        elapsed_ms: f64,
        now_ms: i64,
        fields: Vec<(&str, Value)>,
    ) -> String {
        let mut definitions: Vec<Value> = counts.iter().map(|name| json!({"Name": name})).collect();
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
        // A tenth of a millisecond is finer than a Lambda's clock needs to be.
        let elapsed_ms = (elapsed_ms * 10.0).round() / 10.0;
        root.insert("Latency".into(), json!(elapsed_ms));
        root.insert("level".into(), json!("INFO"));
        for (name, value) in fields {
            root.insert(name.into(), value);
        }
        root.insert("duration_ms".into(), json!(elapsed_ms));
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
        let failed = parse(&w.message("evt_1", &Handled::Retry("x".into()), 2.04, 1_000));
        assert_valid_emf(&failed);
        assert_eq!(failed["Failed"], 1);
        // The log line's fields, for a search, on the same line.
        assert_eq!(
            (&failed["message"], &failed["event_id"], &failed["result"]),
            (&json!("message"), &json!("evt_1"), &json!("retry"))
        );
        assert_eq!(
            (&failed["reason"], &failed["duration_ms"]),
            (&json!("x"), &json!(2.0))
        );
        assert_eq!(
            (
                &accepted["message"],
                &accepted["event_id"],
                &accepted["verdict"]
            ),
            (&json!("delivery"), &json!("evt_1"), &json!("accepted"))
        );
        assert_eq!(
            (&accepted["status"], &accepted["level"]),
            (&json!(200), &json!("INFO"))
        );
    }

    fn reply(verdict: Verdict) -> Reply {
        let mut r = Reply::new(verdict);
        r.id = Some("evt_1".into());
        r
    }
}
