//! Where `zofhook` keeps events: the embedded SQLite store in the data dir, or (with `--aws`)
//! the deployed DynamoDB table and SQS queues, each part opened when a command needs it.

use crate::global::Global;
use anyhow::{Context, Result};
use std::sync::Arc;
#[cfg(feature = "aws")]
use zofhook_core::aws::{dynamodb, sqs};
use zofhook_core::config::Config;
#[cfg(feature = "aws")]
use zofhook_core::ledger::dynamodb::DynamoLedger;
use zofhook_core::ledger::sqlite::SqliteLedger;
use zofhook_core::ledger::Ledger;
use zofhook_core::queue::sqlite::SqliteQueue;
#[cfg(feature = "aws")]
use zofhook_core::queue::sqs::{SqsInbox, SqsQueue};
use zofhook_core::queue::{Inbox, Queue};
use zofhook_core::sqlite::Db;

/// What `--aws` says in a build without the AWS SDK (the default build, for a fast first run).
#[cfg(not(feature = "aws"))]
pub const NO_AWS: &str = "this zofhook was built without AWS support (--aws); build it with \
    `cargo build --release -p zofhook --features aws`";

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
            anyhow::bail!("{NO_AWS}");
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
