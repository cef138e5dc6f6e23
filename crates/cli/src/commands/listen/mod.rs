//! `zofhook listen --forward-to URL`: follow the ledger (with `--aws`, the deployed table's time
//! index, by reads alone) and forward every event accepted after the start to a local handler,
//! with its archived body signed afresh with the local secret, one line per event
//! (docs/design.md section 11; the anchor is `stripe listen --forward-to`).
//!
//! Each poll reads the index entries received in the last [`follow::LOOKBACK_MS`] (a record may reach
//! the index a little after its `received_at`), remembers the ids it has taken, and reads each
//! new record once it is accepted (past `received`). With `--replayed` it reads the replays'
//! notes too (`zofhook replay` writes one per replay, in the same index). A handler that does
//! not answer is reported per event and again when it answers once more, with the ids it
//! missed; the polling goes on.

mod follow;

use super::send::verifier;
use crate::global::Global;
use crate::listener::shutdown_signal;
use crate::secret::secrets;
use crate::store::{Backend, Needs};
use anyhow::{bail, Context, Result};
use clap::Args;
use follow::{Follower, FORWARD_TIMEOUT};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use zofhook_core::config::Config;
use zofhook_core::ledger::Status;

#[derive(Args, Debug)]
pub struct ListenArgs {
    /// Where to POST each event: the handler in development.
    #[arg(long)]
    pub forward_to: String,
    /// Only events of this type.
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Only events in these statuses (comma-separated or repeated): each is forwarded once it
    /// reaches one of them (`--status failed`: when the worker gives up on it).
    #[arg(long, value_delimiter = ',')]
    pub status: Vec<String>,
    /// Also forward replays (`zofhook replay`, the console's Replay) made from now on, of any
    /// event, old ones included.
    #[arg(long)]
    pub replayed: bool,
    /// How often to read the ledger: 100ms to 60s.
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let (digits, unit) = match text.strip_suffix("ms") {
        Some(d) => (d, 1),
        None => match text.strip_suffix('s') {
            Some(d) => (d, 1000),
            None => {
                return Err(format!(
                    "{text:?}: give milliseconds or seconds (500ms, 2s)"
                ))
            }
        },
    };
    let ms = digits
        .parse::<u64>()
        .map_err(|_| format!("{text:?}: give milliseconds or seconds (500ms, 2s)"))?
        .saturating_mul(unit);
    if !(100..=60_000).contains(&ms) {
        return Err(format!("{text:?}: between 100ms and 60s"));
    }
    Ok(Duration::from_millis(ms))
}

pub async fn listen(global: &Global, config: &Config, args: ListenArgs) -> Result<i32> {
    let url = reqwest::Url::parse(&args.forward_to)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .with_context(|| format!("--forward-to {:?} is not an http(s) URL", args.forward_to))?;
    let mut statuses = Vec::new();
    for status in &args.status {
        let status = status.trim();
        match status.parse::<Status>() {
            Ok(s) => statuses.push(s),
            Err(_) => bail!(
                "--status {status:?}: one of received, enqueued, processing, processed, failed"
            ),
        }
    }
    let (secrets, _) = secrets(global, config, false)?;
    let backend = Backend::open(global, config, Needs::EVENTS).await?;
    let place = match (&global.table_name, global.aws) {
        (Some(table), true) => format!("DynamoDB table {table}"),
        _ => backend.describe(global),
    };
    let start = zofhook_core::rfc3339(zofhook_core::now_ms());
    let mut follower = Follower {
        ledger: backend.ledger()?,
        client: reqwest::Client::builder()
            .timeout(FORWARD_TIMEOUT)
            .build()?,
        url: url.to_string(),
        verifier: verifier(config),
        secrets,
        kind: args.kind.clone(),
        statuses,
        replayed: args.replayed,
        start: start.clone(),
        seen: HashMap::new(),
        pending: BTreeSet::new(),
        missed: Vec::new(),
        missed_total: 0,
        forwarded: 0,
        index_reads: 0,
        record_reads: 0,
        ledger_down: None,
    };
    // The first read checks the table before the ready line.
    follower
        .ledger
        .accepted_since(&start)
        .await
        .with_context(|| format!("cannot read the ledger ({place})"))?;
    println!("Forwarding events accepted from {start} on ({place}) to {url}; Ctrl-C stops");
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut ticks = tokio::time::interval(args.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticks.tick() => {
                tokio::select! {
                    _ = &mut stop => break,
                    () = follower.poll() => {}
                }
            }
        }
    }
    let missed = if follower.missed_total == 0 {
        String::new()
    } else {
        format!(
            "; {} not delivered (the handler did not answer)",
            follower.missed_total
        )
    };
    println!("Stopped: {} event(s) forwarded{missed}", follower.forwarded);
    eprintln!(
        "zofhook: read the ledger's time index {} time(s) and {} record(s)",
        follower.index_reads, follower.record_reads
    );
    Ok(0)
}
