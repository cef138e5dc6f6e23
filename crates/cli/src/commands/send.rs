//! `send`, `sign` and `verify`: realistic signed Zof events, made with the same `Verifier` the
//! receiver checks them with.

use super::serve::URL_FILE;
use crate::global::Global;
use crate::secret::secrets;
use anyhow::{Context, Result};
use clap::Args;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;
use std::io::Read;
use std::path::PathBuf;
use zofhook_core::config::Config;
use zofhook_core::signature::{Rejection, Verifier};

#[derive(Args, Debug)]
pub struct SendArgs {
    /// Where to POST (default: the URL `serve` last listened on with this data dir, else
    /// http://127.0.0.1:3000/webhook).
    #[arg(long, env = "ZOFHOOK_URL")]
    pub url: Option<String>,
    /// The event type.
    #[arg(long = "type", default_value = "run.completed")]
    pub kind: String,
    /// The event id (default: a new evt_… id). With --id the event is determined by the flags
    /// (run id and created derived from the id), so sending an id again is a true duplicate.
    #[arg(long)]
    pub id: Option<String>,
    /// The run id (default: derived from --id, else a new run_… id).
    #[arg(long)]
    pub run_id: Option<String>,
    /// The event's `created` time, RFC 3339 (default: 2026-01-01T00:00:00Z with --id, else now).
    #[arg(long)]
    pub created: Option<String>,
    /// The organization (default: the OrganizationId setting, or org_local).
    #[arg(long)]
    pub org: Option<String>,
    /// Send this file's bytes as the body instead of a built event.
    #[arg(long)]
    pub body: Option<PathBuf>,
    /// Send the same event this many times (duplicates).
    #[arg(long, default_value_t = 1)]
    pub times: u32,
}

#[derive(Args, Debug)]
pub struct SignArgs {
    /// The body to sign; `-` reads standard input.
    #[arg(long, default_value = "-")]
    pub body: PathBuf,
    /// The message id (standard-webhooks only; default: a new msg_… id).
    #[arg(long)]
    pub msg_id: Option<String>,
    /// Unix seconds to sign at (default: now).
    #[arg(long)]
    pub timestamp: Option<i64>,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The body to check; `-` reads standard input.
    #[arg(long, default_value = "-")]
    pub body: PathBuf,
    /// A received header, `Name: value`; repeat for several.
    #[arg(short = 'H', long = "header", required = true)]
    pub headers: Vec<String>,
    /// Unix seconds to check at (default: now).
    #[arg(long)]
    pub timestamp: Option<i64>,
}

/// `created` of an event sent with --id and no --created.
const FIXED_CREATED: &str = "2026-01-01T00:00:00Z";

pub(crate) fn verifier(config: &Config) -> Verifier {
    Verifier::new(
        config.scheme,
        config.signature_header.clone(),
        config.tolerance_seconds,
    )
    .with_encoding(config.secret_encoding)
}

fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    // Ids need only be unlikely to repeat; fall back to the clock if randomness is unavailable.
    if getrandom::fill(&mut bytes).is_err() {
        bytes = zofhook_core::now_ms().to_be_bytes();
    }
    format!("{prefix}_{}", hex_lower(&bytes))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_body(path: &PathBuf) -> Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut body = Vec::new();
        std::io::stdin().read_to_end(&mut body)?;
        Ok(body)
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

fn now_s() -> i64 {
    zofhook_core::now_ms() / 1000
}

pub async fn send(global: &Global, config: &Config, args: SendArgs) -> Result<i32> {
    let (secrets, _) = secrets(global, config, false)?;
    let body = match &args.body {
        Some(path) => read_body(path)?,
        None => {
            let org = args
                .org
                .clone()
                .or_else(|| config.organization_id.clone())
                .unwrap_or_else(|| "org_local".to_string());
            // An event named by --id is the same event every time: nothing in it is random.
            let (id, derived_run, default_created) = match &args.id {
                Some(id) => {
                    let digest = zofhook_core::event::body_sha256(id.as_bytes());
                    let run = format!("run_{}", &digest[..16]);
                    (id.clone(), run, FIXED_CREATED.to_string())
                }
                None => (
                    random_id("evt"),
                    random_id("run"),
                    zofhook_core::rfc3339(zofhook_core::now_ms() / 1000 * 1000),
                ),
            };
            let run_id = args.run_id.clone().unwrap_or(derived_run);
            let created = args.created.clone().unwrap_or(default_created);
            json!({
                "id": id,
                "type": args.kind,
                "created": created,
                "data": {"object": {"id": run_id, "organization_id": org, "run_id": run_id}}
            })
            .to_string()
            .into_bytes()
        }
    };
    let msg_id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_string))
        .unwrap_or_else(|| random_id("msg"));
    let url = match args.url.clone() {
        Some(url) => url,
        None => std::fs::read_to_string(global.data_dir.join(URL_FILE))
            .map(|u| u.trim().to_string())
            .unwrap_or_else(|_| "http://127.0.0.1:3000/webhook".to_string()),
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .build()?;
    let v = verifier(config);
    let mut all_ok = true;
    for _ in 0..args.times.max(1) {
        // Signed afresh each time, as Zof signs each delivery attempt.
        let headers = v.sign_headers(&secrets.current, &body, now_s(), &msg_id);
        let response = client
            .post(&url)
            .headers(headers)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .with_context(|| format!("cannot POST to {url}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        println!("{} {}", status.as_u16(), text.trim());
        all_ok &= status.is_success();
    }
    Ok(if all_ok { 0 } else { 1 })
}

pub fn sign(global: &Global, config: &Config, args: SignArgs) -> Result<i32> {
    let (secrets, _) = secrets(global, config, false)?;
    let body = read_body(&args.body)?;
    let msg_id = args.msg_id.unwrap_or_else(|| random_id("msg"));
    for (name, value) in verifier(config).sign(
        &secrets.current,
        &body,
        args.timestamp.unwrap_or_else(now_s),
        &msg_id,
    ) {
        println!("{name}: {value}");
    }
    Ok(0)
}

pub fn verify(global: &Global, config: &Config, args: VerifyArgs) -> Result<i32> {
    let (secrets, _) = secrets(global, config, false)?;
    let body = read_body(&args.body)?;
    let mut headers = HeaderMap::new();
    for line in &args.headers {
        let (name, value) = line
            .split_once(':')
            .with_context(|| format!("--header {line:?} is not `Name: value`"))?;
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes())
                .with_context(|| format!("{name:?} is not a header name"))?,
            HeaderValue::from_str(value.trim())
                .with_context(|| format!("the value of {name} is not a header value"))?,
        );
    }
    let at = args.timestamp.unwrap_or_else(now_s);
    match verifier(config).verify(&secrets, &headers, &body, at) {
        Ok(()) => {
            println!("valid");
            Ok(0)
        }
        Err(why) => {
            println!("invalid: {why}");
            // A hint the receiver never gives (no oracle): the other reading of the secret.
            let current = verifier(config);
            let other = current.reading.other();
            let passes_otherwise = why == Rejection::NoMatch
                && secrets.check(other).is_ok()
                && current
                    .with_reading(other)
                    .verify(&secrets, &headers, &body, at)
                    .is_ok();
            if passes_otherwise {
                println!(
                    "it matches if the secret is read {}: --secret-encoding {}",
                    other.describe(),
                    other.setting().as_str()
                );
            }
            Ok(1)
        }
    }
}
