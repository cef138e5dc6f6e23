//! Where `zofhook` keeps events: the embedded SQLite store in the data dir, or (with `--aws`)
//! the deployed DynamoDB table and SQS queues. Also `events` and `redrive`, and the local secret.

use crate::Global;
use anyhow::{bail, Context, Result};
use base64::Engine;
use clap::{Args, Subcommand};
use std::path::Path;
use std::sync::Arc;
#[cfg(feature = "aws")]
use zofhook_core::aws::{dynamodb, sqs};
use zofhook_core::config::Config;
#[cfg(feature = "aws")]
use zofhook_core::ledger::dynamodb::DynamoLedger;
use zofhook_core::ledger::sqlite::SqliteLedger;
use zofhook_core::ledger::{Ledger, Record, Selection, Status};
use zofhook_core::queue::sqlite::SqliteQueue;
#[cfg(feature = "aws")]
use zofhook_core::queue::sqs::{SqsInbox, SqsQueue};
use zofhook_core::queue::{Inbox, Queue};
use zofhook_core::signature::Secrets;
use zofhook_core::sqlite::Db;

/// What `--aws` says in a build without the AWS SDK (the default build, for a fast first run).
#[cfg(not(feature = "aws"))]
pub const NO_AWS: &str = "this zofhook was built without AWS support (--aws); build it with \
    `cargo build --release -p zofhook --features aws`";

/// The file in the data dir that holds the generated secret.
pub const SECRET_FILE: &str = "secret";
/// The file in the data dir where `serve` writes the URL it listens on, for `send`.
pub const URL_FILE: &str = "url";

pub enum Backend {
    Local {
        ledger: SqliteLedger,
        queue: SqliteQueue,
    },
    /// Each part is there when the command asked for it (and so for its `--aws` flag).
    #[cfg(feature = "aws")]
    Aws {
        ledger: Option<DynamoLedger>,
        queue: Option<SqsQueue>,
        inbox: Option<SqsInbox>,
    },
}

/// What a command uses: with `--aws`, only these flags are required.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "aws"), allow(dead_code))]
pub struct Needs {
    /// The ledger: `--table-name`.
    pub table: bool,
    /// The event queue: `--queue-url`.
    pub queue: bool,
    /// The dead-letter queue: `--dlq-url`.
    pub dlq: bool,
    /// An operator's command (events, replay, redrive, console), not bound by Zof's 10 s: its
    /// store calls may take up to [`OPERATOR_STORE_TIMEOUT`] (a slow or busy table answers a long
    /// query late, not never). `serve` keeps `StoreTimeoutMs`, which its deadline needs.
    pub operator: bool,
}

/// How long an operator's store call may take, retries included (`StoreTimeoutMs` when larger).
#[cfg(feature = "aws")]
pub const OPERATOR_STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Needs {
    pub const SERVE: Needs = Needs {
        table: true,
        queue: true,
        dlq: false,
        operator: false,
    };
    pub const EVENTS: Needs = Needs {
        table: true,
        queue: false,
        dlq: false,
        operator: true,
    };
    pub const REPLAY: Needs = Needs {
        table: true,
        queue: true,
        dlq: false,
        operator: true,
    };
    pub const REDRIVE: Needs = Needs {
        table: false,
        queue: true,
        dlq: true,
        operator: true,
    };
}

impl Backend {
    pub async fn open(global: &Global, config: &Config, needs: Needs) -> Result<Backend> {
        #[cfg(not(feature = "aws"))]
        if global.aws {
            let _ = needs;
            bail!("{NO_AWS}");
        }
        #[cfg(feature = "aws")]
        if global.aws {
            let need =
                |given: &Option<String>, needed: bool, flag: &str, env: &str| match (given, needed)
                {
                    (Some(value), _) => Ok(Some(value.clone())),
                    (None, true) => Err(anyhow::anyhow!("--aws needs {flag} ({env})")),
                    (None, false) => Ok(None),
                };
            let table = need(
                &global.table_name,
                needs.table,
                "--table-name",
                "ZOFHOOK_TABLE_NAME",
            )?;
            let queue_url = need(
                &global.queue_url,
                needs.queue,
                "--queue-url",
                "ZOFHOOK_QUEUE_URL",
            )?;
            let dlq_url = need(&global.dlq_url, needs.dlq, "--dlq-url", "ZOFHOOK_DLQ_URL")?;
            let sdk = if needs.operator {
                let mut patient = config.clone();
                patient.store_timeout = patient.store_timeout.max(OPERATOR_STORE_TIMEOUT);
                zofhook_core::aws::sdk_config(&patient).await
            } else {
                zofhook_core::aws::sdk_config(config).await
            };
            let sqs = sqs::Client::new(&sdk);
            return Ok(Backend::Aws {
                ledger: table.map(|table| {
                    DynamoLedger::new(dynamodb::Client::new(&sdk), table)
                        .with_retention_days(config.retention_days)
                }),
                queue: queue_url.clone().map(|url| SqsQueue::new(sqs.clone(), url)),
                inbox: queue_url.map(|url| SqsInbox::new(sqs, url, dlq_url, config)),
            });
        }
        std::fs::create_dir_all(&global.data_dir)
            .with_context(|| format!("cannot create the data dir {}", global.data_dir.display()))?;
        let db = Db::open(&global.data_dir)?;
        Ok(Backend::Local {
            ledger: SqliteLedger::new(db.clone()),
            queue: SqliteQueue::new(
                db,
                config.processing_lease,
                config.max_receive_count,
                config.backoff(),
                zofhook_core::system_clock(),
            ),
        })
    }

    pub fn ledger(&self) -> Result<Arc<dyn Ledger>> {
        match self {
            Backend::Local { ledger, .. } => Ok(Arc::new(ledger.clone())),
            #[cfg(feature = "aws")]
            Backend::Aws { ledger, .. } => Ok(Arc::new(
                ledger.clone().context("--aws needs --table-name")?,
            )),
        }
    }

    pub fn queue(&self) -> Result<Arc<dyn Queue>> {
        match self {
            Backend::Local { queue, .. } => Ok(Arc::new(queue.clone())),
            #[cfg(feature = "aws")]
            Backend::Aws { queue, .. } => {
                Ok(Arc::new(queue.clone().context("--aws needs --queue-url")?))
            }
        }
    }

    pub fn inbox(&self) -> Result<Arc<dyn Inbox>> {
        match self {
            Backend::Local { queue, .. } => Ok(Arc::new(queue.clone())),
            #[cfg(feature = "aws")]
            Backend::Aws { inbox, .. } => {
                Ok(Arc::new(inbox.clone().context("--aws needs --queue-url")?))
            }
        }
    }

    /// On the embedded store, ends the leases and takes back the messages of a process that
    /// died holding them (call it only as the data dir's owner). Returns how many events.
    pub async fn release_in_flight(&self) -> Result<usize> {
        match self {
            Backend::Local { ledger, queue } => {
                let leases = ledger.release_leases().await?;
                let messages = queue.release_in_flight().await?;
                Ok(leases.max(messages))
            }
            // SQS returns a dead consumer's messages after their visibility timeout, and the
            // worker takes over an expired claim.
            #[cfg(feature = "aws")]
            Backend::Aws { .. } => Ok(0),
        }
    }

    pub fn describe(&self, global: &Global) -> String {
        match self {
            Backend::Local { .. } => format!("embedded store in {}", global.data_dir.display()),
            #[cfg(feature = "aws")]
            Backend::Aws { ledger, queue, .. } => {
                format!(
                    "DynamoDB table {} and SQS queue {}",
                    ledger.as_ref().map(|l| l.table()).unwrap_or("-"),
                    queue.as_ref().map(|q| q.url()).unwrap_or("-")
                )
            }
        }
    }
}

/// The file in the data dir that `serve` locks: it names the process that owns the dir.
pub const LOCK_FILE: &str = "serve.lock";

/// The data dir's ownership by one `serve`, released when dropped (or when the process dies,
/// however it dies: the lock is the operating system's).
pub struct DataDirLock {
    _file: std::fs::File,
}

/// Makes this process the data dir's one `serve`; if another holds it, says which.
pub fn lock_data_dir(dir: &Path) -> Result<DataDirLock> {
    use std::io::{Read, Seek, Write};
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data dir {}", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path);
    // A data dir that became read-only still gets its owner checked; opening the store then
    // says what is wrong with it.
    let (mut file, writable) = match opened {
        Ok(file) => (file, true),
        Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem && path.exists() => {
            (std::fs::File::open(&path)?, false)
        }
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut owner = String::new();
            let _ = file.read_to_string(&mut owner);
            let owner = owner.trim();
            let owner = if owner.is_empty() {
                "another process".to_string()
            } else {
                owner.to_string()
            };
            bail!(
                "the data dir {} is in use by {owner}; stop it first, or give this one another --data-dir",
                dir.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
    if writable {
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "zofhook serve (pid {})", std::process::id())?;
        file.flush()?;
    }
    Ok(DataDirLock { _file: file })
}

/// A secret kept in the data dir, as `serve` announces it.
pub struct KeptSecret {
    pub text: String,
    pub created: bool,
}

/// The secrets to verify and sign with: `--secret`/`--previous-secret`, else the data dir's
/// secret file (returned too, for `serve` to print). With `create`, a missing secret is
/// generated and saved (mode 0600).
pub fn secrets(
    global: &Global,
    config: &Config,
    create: bool,
) -> Result<(Secrets, Option<KeptSecret>)> {
    let reading = config.key_reading();
    if let Some(secret) = &global.secret {
        let secrets = Secrets::parse(secret, global.previous_secret.as_deref())
            .and_then(|s| s.check(reading).map(|()| s))
            .context("--secret / ZOFHOOK_SECRET or --previous-secret / ZOFHOOK_PREVIOUS_SECRET")?;
        return Ok((secrets, None));
    }
    let path = global.data_dir.join(SECRET_FILE);
    let (text, created) = match std::fs::read_to_string(&path) {
        Ok(text) => (text.trim().to_string(), false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            (generate(&global.data_dir)?, true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "no secret: give --secret (ZOFHOOK_SECRET), or run `zofhook serve --data-dir {}` once to create one",
                global.data_dir.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let secrets = Secrets::parse(&text, global.previous_secret.as_deref())
        .and_then(|s| s.check(reading).map(|()| s))
        .with_context(|| format!("the secret in {}", path.display()))?;
    Ok((secrets, Some(KeptSecret { text, created })))
}

fn generate(dir: &Path) -> Result<String> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness for a secret: {e}"))?;
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    );
    std::fs::create_dir_all(dir)?;
    let path = dir.join(SECRET_FILE);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{secret}\n").as_bytes())?;
    file.sync_all()?;
    Ok(secret)
}

/// The selection flags `events list` and `replay` share (DESIGN.md section 8).
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
    fn given(&self) -> bool {
        !self.status.is_empty()
            || self.kind.is_some()
            || self.since.is_some()
            || self.until.is_some()
    }

    /// The selection, or a clear error naming the flag.
    pub fn selection(&self, limit: usize) -> Result<Selection> {
        let statuses = self
            .status
            .iter()
            .map(|s| {
                s.trim().parse::<Status>().map_err(|_| {
                    anyhow::anyhow!(
                        "--status {s:?}: accepts received, enqueued, processing, processed, failed"
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Selection {
            statuses,
            kind: self.kind.clone(),
            since: self
                .since
                .as_deref()
                .map(|t| point_in_time("--since", t))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|t| point_in_time("--until", t))
                .transpose()?,
            limit,
        })
    }
}

/// RFC 3339 or a relative time (`90s`, `15m`, `2h`, `7d` ago), as stored times are written.
fn point_in_time(flag: &str, text: &str) -> Result<String> {
    let text = text.trim();
    let relative = text
        .strip_suffix(['s', 'm', 'h', 'd'])
        .and_then(|n| n.parse::<i64>().ok())
        .zip(text.chars().last());
    let ms = match relative {
        Some((n, unit)) => {
            let seconds = match unit {
                's' => n,
                'm' => n.saturating_mul(60),
                'h' => n.saturating_mul(3600),
                _ => n.saturating_mul(86_400),
            };
            zofhook_core::now_ms().saturating_sub(seconds.saturating_mul(1000))
        }
        None => {
            zofhook_core::parse_rfc3339(text).ok_or_else(|| {
                anyhow::anyhow!(
                    "{flag} {text:?}: accepts an RFC 3339 time (2026-05-20T12:00:00Z) or how long ago (30s, 15m, 2h, 7d)"
                )
            })?
        }
    };
    Ok(zofhook_core::rfc3339(ms))
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
                .await?;
            let mut records = page.records;
            // Bodies stay out of lists: `events show --json` has them.
            for r in &mut records {
                r.body = None;
            }
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
        if summary.failed.is_empty() && summary.not_found.is_empty() {
            0
        } else {
            1
        },
    )
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

/// `zofhook --aws migrate`: the upgrade's one-off step to the time index `by_time` (README,
/// "Upgrading the time index"). The embedded store has no such index: nothing to do there.
pub async fn migrate(global: &Global, config: &Config) -> Result<i32> {
    if !global.aws {
        println!("the embedded store needs no migration: its listings read the table itself");
        return Ok(0);
    }
    #[cfg(not(feature = "aws"))]
    {
        let _ = config;
        bail!("{NO_AWS}");
    }
    #[cfg(feature = "aws")]
    {
        let Backend::Aws {
            ledger: Some(ledger),
            ..
        } = Backend::open(global, config, Needs::EVENTS).await?
        else {
            bail!("--aws needs --table-name");
        };
        let done = ledger.migrate_time_index().await?;
        println!(
            "gave {} record(s) their key in the time index by_time; {} had one already",
            done.moved, done.already
        );
        Ok(0)
    }
}

pub async fn redrive(global: &Global, config: &Config) -> Result<i32> {
    let backend = Backend::open(global, config, Needs::REDRIVE).await?;
    let moved = backend.inbox()?.redrive().await?;
    println!("moved {moved} dead-lettered event(s) back to the queue");
    Ok(0)
}
