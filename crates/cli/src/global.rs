//! The flags every command takes (where the store and the secret are), a leaf that each command
//! imports; `main.rs` composes it with the commands.

use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Where the embedded store and the generated secret live.
    #[arg(
        long,
        global = true,
        env = "ZOFHOOK_DATA_DIR",
        default_value = ".zofhook"
    )]
    pub data_dir: PathBuf,
    /// Use DynamoDB and SQS (the standard AWS environment, AWS_ENDPOINT_URL included).
    #[arg(long, global = true, env = "ZOFHOOK_AWS")]
    pub aws: bool,
    /// With --aws: the ledger table.
    #[arg(long, global = true, env = "ZOFHOOK_TABLE_NAME")]
    pub table_name: Option<String>,
    /// With --aws: the event queue's URL.
    #[arg(long, global = true, env = "ZOFHOOK_QUEUE_URL")]
    pub queue_url: Option<String>,
    /// With --aws: the dead-letter queue's URL (for redrive).
    #[arg(long, global = true, env = "ZOFHOOK_DLQ_URL")]
    pub dlq_url: Option<String>,
    /// The webhook secret (default: the one in the data dir, created by `serve`).
    #[arg(long, global = true, env = "ZOFHOOK_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// During a rotation, the secret being replaced.
    #[arg(
        long,
        global = true,
        env = "ZOFHOOK_PREVIOUS_SECRET",
        hide_env_values = true
    )]
    pub previous_secret: Option<String>,
    /// The Zof API token (for reconciliation with ZofApiBaseUrl).
    #[arg(
        long,
        global = true,
        env = "ZOFHOOK_ZOF_API_TOKEN",
        hide_env_values = true
    )]
    pub zof_api_token: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, env = "ZOFHOOK_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}
