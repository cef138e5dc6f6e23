//! `zofhook replay`: events sent through again from their archived bodies, by id or by a
//! selection (more than 100 ask for `--yes`).

use super::events::SelectArgs;
use crate::global::Global;
use crate::store::{Backend, Needs};
use anyhow::{bail, Result};
use clap::Args;
use zofhook_core::config::Config;

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The events to replay; or a selection instead.
    pub ids: Vec<String>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// At most this many events of the selection (newest first).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print what would be replayed, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replay a selection of more than 100 events.
    #[arg(long)]
    pub yes: bool,
}

/// Above this many events a selection asks for --yes.
const REPLAY_WITHOUT_ASKING: usize = 100;

pub async fn replay(global: &Global, config: &Config, args: ReplayArgs) -> Result<i32> {
    if args.ids.is_empty() != args.select.given() {
        bail!(
            "name event ids, or a selection (--status, --type, --since, --until), not both and not neither"
        );
    }
    let backend = Backend::open(global, config, Needs::REPLAY).await?;
    let ledger = backend.ledger()?;
    let ids = if args.ids.is_empty() {
        let wanted = args.limit.unwrap_or(usize::MAX);
        let selection = args.select.selection(100)?;
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = ledger.list(&selection, cursor.as_deref()).await?;
            ids.extend(page.records.into_iter().map(|r| r.id));
            match page.next {
                Some(next) if ids.len() < wanted => cursor = Some(next),
                _ => break,
            }
        }
        ids.truncate(wanted);
        ids
    } else {
        args.ids.clone()
    };
    if args.dry_run {
        println!("would replay {} event(s): {}", ids.len(), ids.join(", "));
        return Ok(0);
    }
    if args.ids.is_empty() && ids.len() > REPLAY_WITHOUT_ASKING && !args.yes {
        eprintln!(
            "zofhook: {} events selected; replaying more than {REPLAY_WITHOUT_ASKING} needs --yes (--dry-run lists them)",
            ids.len()
        );
        return Ok(2);
    }
    let summary = zofhook_core::replay::replay(
        ledger.as_ref(),
        backend.queue()?.as_ref(),
        &ids,
        zofhook_core::now_ms(),
    )
    .await?;
    for line in summary.lines() {
        println!("{line}");
    }
    Ok(
        if summary.failed.is_empty() && summary.not_found.is_empty() && summary.unnoted.is_empty() {
            0
        } else {
            1
        },
    )
}
