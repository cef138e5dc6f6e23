//! `zofhook events list` and `events show`: the ledger's records, as a table or JSON; and the
//! selection flags that `replay` shares.

use crate::global::Global;
use crate::store::{Backend, Needs};
use anyhow::Result;
use clap::{Args, Subcommand};
use zofhook_core::config::Config;
use zofhook_core::ledger::{Record, Selection, SelectionText};

/// The selection flags `events list` and `replay` share (docs/design.md section 8).
#[derive(Args, Debug, Clone, Default)]
pub struct SelectArgs {
    /// Only events in these statuses (comma-separated or repeated): received, enqueued,
    /// processing, processed, failed.
    #[arg(long, value_delimiter = ',')]
    pub status: Vec<String>,
    /// Only events of this type.
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Received at or after this time: RFC 3339, or how long ago (30s, 15m, 2h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Received before this time: RFC 3339, or how long ago.
    #[arg(long)]
    pub until: Option<String>,
}

impl SelectArgs {
    fn text(&self) -> SelectionText<'_> {
        SelectionText {
            statuses: &self.status,
            kind: self.kind.as_deref(),
            since: self.since.as_deref(),
            until: self.until.as_deref(),
        }
    }

    /// Whether a selection flag is given.
    pub fn given(&self) -> bool {
        self.text().given()
    }

    /// The selection, or a clear error naming the flag.
    pub fn selection(&self, limit: usize) -> Result<Selection> {
        Selection::parse(self.text(), limit, zofhook_core::now_ms())
            .map_err(|e| anyhow::anyhow!("--{e}"))
    }
}

#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// Records newest first, a page at a time.
    List {
        #[command(flatten)]
        select: SelectArgs,
        /// Print a JSON array instead of a table (the next page's cursor goes to stderr).
        #[arg(long)]
        json: bool,
        /// Records per page.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Where the previous page ended (printed after it).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One record (with its archived body under --json).
    Show {
        id: String,
        /// Print the record as a JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub async fn events(global: &Global, config: &Config, command: EventsCommand) -> Result<i32> {
    let backend = Backend::open(global, config, Needs::EVENTS).await?;
    match command {
        EventsCommand::List {
            select,
            json,
            limit,
            cursor,
        } => {
            let selection = select.selection(limit.max(1))?;
            let page = backend
                .ledger()?
                .list(&selection, cursor.as_deref())
                .await?
                .listed();
            let records = page.records;
            if json {
                println!("{}", serde_json::to_string_pretty(&records)?);
                if let Some(next) = &page.next {
                    eprintln!("next page: --cursor {next}");
                }
            } else {
                print_table(&records);
                if let Some(next) = &page.next {
                    println!("next page: --cursor {next}");
                }
            }
            Ok(0)
        }
        EventsCommand::Show { id, json } => match backend.ledger()?.get(&id).await? {
            None => {
                eprintln!("zofhook: no event {id}");
                Ok(1)
            }
            Some(record) if json => {
                println!("{}", serde_json::to_string_pretty(&record)?);
                Ok(0)
            }
            Some(record) => {
                print_record(&record);
                Ok(0)
            }
        },
    }
}

fn print_table(records: &[Record]) {
    println!(
        "{:<36} {:<16} {:<10} {:>8}  {:<24} {:<24}",
        "ID", "TYPE", "STATUS", "ATTEMPTS", "RECEIVED_AT", "PROCESSED_AT"
    );
    for r in records {
        println!(
            "{:<36} {:<16} {:<10} {:>8}  {:<24} {:<24}",
            r.id,
            r.kind,
            r.status,
            r.attempts,
            r.received_at,
            r.processed_at.as_deref().unwrap_or("-")
        );
    }
    if records.is_empty() {
        println!("(no events yet)");
    }
}

fn print_record(r: &Record) {
    let rows = [
        ("id", r.id.clone()),
        ("type", r.kind.clone()),
        ("status", r.status.to_string()),
        (
            "organization_id",
            r.organization_id.clone().unwrap_or_default(),
        ),
        ("run_id", r.run_id.clone().unwrap_or_default()),
        ("attempts", r.attempts.to_string()),
        ("received_at", r.received_at.clone()),
        ("processed_at", r.processed_at.clone().unwrap_or_default()),
        (
            "outcome",
            r.outcome
                .as_ref()
                .map(|o| o.to_string())
                .unwrap_or_default(),
        ),
        ("error", r.error.clone().unwrap_or_default()),
        ("body_sha256", r.body_sha256.clone()),
    ];
    for (name, value) in rows {
        println!("{name:<16} {value}");
    }
}
