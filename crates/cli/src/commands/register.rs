//! `zofhook register --url URL`: subscribe an endpoint through Zof's API (`POST
//! {ZofApiBaseUrl}/v1/webhooks`, docs/design.md section 11) and print the webhook id; when the
//! answer carries a signing secret, store it where the receiver reads it (with `--yes`, or when
//! asked), keeping the old secret as the previous one so that rotation has no gap.
//!
//! Zof's answer shape is not documented: `id` and `secret` are read when present and the rest is
//! shown as it came.

use crate::global::Global;
use crate::secret::{self, SECRET_FILE};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;
use zofhook_core::config::Config;
use zofhook_core::signature::Secrets;

/// How long Zof's API has to answer.
const TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Args, Debug)]
pub struct RegisterArgs {
    /// The endpoint Zof should deliver to (the stack's WebhookUrl, or a tunnel to `serve`).
    #[arg(long)]
    pub url: String,
    /// More event types to subscribe to, beside run.completed (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    pub events: Vec<String>,
    /// Store a returned signing secret without asking.
    #[arg(long)]
    pub yes: bool,
    /// With --aws: the stack's webhook secret in Secrets Manager (its WebhookSecretArn output).
    #[arg(long, env = "ZOFHOOK_SECRET_ID")]
    pub secret_id: Option<String>,
}

pub async fn register(global: &Global, config: &Config, args: RegisterArgs) -> Result<i32> {
    let base = config
        .zof_api_base_url
        .as_deref()
        .context("register needs ZofApiBaseUrl (--zof-api-base-url, ZOFHOOK_ZOF_API_BASE_URL)")?;
    let token = global
        .zof_api_token
        .as_deref()
        .context("register needs the Zof API token (--zof-api-token, ZOFHOOK_ZOF_API_TOKEN)")?;
    let target = reqwest::Url::parse(&args.url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .with_context(|| format!("--url {:?} is not an http(s) URL", args.url))?;
    if global.aws && args.secret_id.is_none() {
        bail!("register --aws stores the signing secret in the stack's secret: give --secret-id (ZOFHOOK_SECRET_ID), the WebhookSecretArn output");
    }
    let mut events = vec!["run.completed".to_string()];
    for event in &args.events {
        let event = event.trim();
        if event.is_empty() {
            bail!("--events: an empty event type");
        }
        if !events.iter().any(|e| e == event) {
            events.push(event.to_string());
        }
    }

    let mut endpoint = reqwest::Url::parse(base)
        .ok()
        .filter(|u| !u.cannot_be_a_base())
        .with_context(|| format!("ZofApiBaseUrl {base:?} is not a base URL"))?;
    if let Ok(mut segments) = endpoint.path_segments_mut() {
        segments.pop_if_empty().push("v1").push("webhooks");
    }
    let client = reqwest::Client::builder().timeout(TIMEOUT).build()?;
    let response = client
        .post(endpoint.clone())
        .bearer_auth(token)
        .json(&json!({ "url": target.as_str(), "events": events }))
        .send()
        .await
        .with_context(|| format!("POST {endpoint}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let answer: Option<Value> = serde_json::from_str(&text).ok();
    if !status.is_success() {
        eprintln!(
            "zofhook: Zof refused the subscription: {status}: {}",
            answer
                .as_ref()
                .and_then(message)
                .unwrap_or_else(|| shorten(&text))
        );
        return Ok(1);
    }
    let Some(Value::Object(mut answer)) = answer else {
        println!("Zof accepted the subscription ({status}) but its answer is not a JSON object:");
        println!("{}", shorten(&text));
        return Ok(0);
    };
    let id = answer.remove("id");
    let secret = match answer.remove("secret") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    };
    match id {
        Some(Value::String(id)) => println!("Registered webhook {id} for {target}"),
        Some(id) => println!("Registered webhook {id} for {target}"),
        None => println!("Registered a webhook for {target} (Zof's answer has no id)"),
    }
    println!("  events: {}", events.join(", "));
    for (key, value) in &answer {
        println!("  {key}: {value}");
    }
    let Some(secret) = secret else {
        println!("  (no signing secret in the answer: the receiver's secret is unchanged)");
        return Ok(0);
    };
    Secrets::parse(&secret, None)
        .and_then(|s| s.check(config.key_reading()).map(|()| s))
        .context("the signing secret in Zof's answer cannot be used; nothing was stored")?;
    let place = if global.aws {
        format!(
            "the stack's secret {}",
            args.secret_id.as_deref().unwrap_or_default()
        )
    } else {
        global.data_dir.join(SECRET_FILE).display().to_string()
    };
    if !(args.yes || ask(&format!("Store the signing secret in {place}?"))?) {
        println!("  signing secret not stored: rerun with --yes, or put it in {place} yourself");
        return Ok(0);
    }
    if global.aws {
        store_aws(
            config,
            args.secret_id.as_deref().unwrap_or_default(),
            &secret,
        )
        .await?;
    } else {
        secret::rotate(&global.data_dir, &secret)?;
    }
    println!("  signing secret stored in {place}; the old one is kept as the previous secret");
    Ok(0)
}

/// The API's message: `message`, `error.message` or a string `error`.
fn message(answer: &Value) -> Option<String> {
    let text = answer
        .get("message")
        .or_else(|| answer.pointer("/error/message"))
        .or_else(|| answer.get("error"))?;
    Some(
        text.as_str()
            .map_or_else(|| text.to_string(), str::to_string),
    )
}

fn shorten(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None if text.is_empty() => "(empty answer)".to_string(),
        None => text.to_string(),
    }
}

/// Asks on the terminal; without one, the answer is no (scripts pass `--yes`).
fn ask(question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

#[cfg(feature = "aws")]
async fn store_aws(config: &Config, secret_id: &str, secret: &str) -> Result<()> {
    use zofhook_core::aws::secretsmanager::error::DisplayErrorContext;
    let sdk = zofhook_core::aws::sdk_config(config).await;
    let client = zofhook_core::aws::secretsmanager::Client::new(&sdk);
    let old = zofhook_core::secrets::secretsmanager::secret_string(&client, secret_id)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read {secret_id}: {e}; nothing was stored"))?;
    let current = if old.starts_with('{') {
        serde_json::from_str::<Value>(&old)
            .ok()
            .and_then(|v| v.get("current").and_then(Value::as_str).map(str::to_string))
    } else {
        Some(old)
    };
    let value = match current {
        Some(current) if current != secret => json!({ "current": secret, "previous": current }),
        _ => json!({ "current": secret }),
    };
    client
        .put_secret_value()
        .secret_id(secret_id)
        .secret_string(value.to_string())
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot store {secret_id}: {}", DisplayErrorContext(&e)))?;
    Ok(())
}

#[cfg(not(feature = "aws"))]
async fn store_aws(_config: &Config, _secret_id: &str, _secret: &str) -> Result<()> {
    bail!("this zofhook was built without --features aws; nothing was stored")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_read_where_apis_put_it() {
        assert_eq!(
            message(&json!({"message": "bad token"})).unwrap(),
            "bad token"
        );
        assert_eq!(
            message(&json!({"error": {"message": "nope"}})).unwrap(),
            "nope"
        );
        assert_eq!(message(&json!({"error": "denied"})).unwrap(), "denied");
        assert_eq!(message(&json!({"other": 1})), None);
    }

    #[test]
    fn a_long_answer_is_shortened() {
        assert_eq!(shorten(&"x".repeat(500)).chars().count(), 301);
        assert_eq!(shorten("  "), "(empty answer)");
    }
}
