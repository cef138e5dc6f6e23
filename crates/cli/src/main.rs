//! `zofhook`: the zof-webhooks pipeline as one local binary (DESIGN.md section 7).
//!
//! `serve` runs the receive pipeline and the worker in one process on an embedded SQLite store
//! (or on DynamoDB + SQS with `--aws`); `send`, `sign` and `verify` make and check signed events;
//! `events` reads the ledger; `redrive` brings dead-lettered events back.

mod backend;
mod console;
mod listener;
mod send;
mod serve;
mod settings;

use anyhow::Result;
use clap::{Args, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "zofhook",
    version,
    about = "Receive, verify, record and process Zof webhooks locally"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

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

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the receiver on POST /webhook and the worker in-process.
    Serve(serve::ServeArgs),
    /// Build (or read) an event, sign it, POST it, and print each response (exit 1 if one is not
    /// a 2xx).
    Send(send::SendArgs),
    /// Print the signature header(s) for a body.
    Sign(send::SignArgs),
    /// Check a signature for a body (exit 0 if valid, 1 if not).
    Verify(send::VerifyArgs),
    /// Show ledger records.
    #[command(subcommand)]
    Events(backend::EventsCommand),
    /// Send events through again from their archived bodies (by id, or a selection).
    Replay(backend::ReplayArgs),
    /// Move dead-lettered events back to the queue.
    Redrive,
    /// Serve the console (the events, replay, redrive) without the webhook.
    Console(console::ConsoleArgs),
    /// Upgrade a deployed ledger to the time index by_time: give the records written before it
    /// their index key (once, between the upgrade's two deployments; README).
    Migrate,
}

fn main() {
    let matches =
        settings::with_setting_args(<Cli as clap::CommandFactory>::command()).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    zofhook_core::logging::init(cli.global.log_format == "json");
    let code = match run(cli, &matches) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("zofhook: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli, matches: &clap::ArgMatches) -> Result<i32> {
    let config = settings::config(matches)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::serve(&cli.global, config, args).await,
            Command::Send(args) => send::send(&cli.global, &config, args).await,
            Command::Sign(args) => send::sign(&cli.global, &config, args),
            Command::Verify(args) => send::verify(&cli.global, &config, args),
            Command::Events(command) => backend::events(&cli.global, &config, command).await,
            Command::Replay(args) => backend::replay(&cli.global, &config, args).await,
            Command::Redrive => backend::redrive(&cli.global, &config).await,
            Command::Console(args) => console::run(&cli.global, &config, args).await,
            Command::Migrate => backend::migrate(&cli.global, &config).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> Result<i32> {
        let argv = std::iter::once("zofhook").chain(args.iter().copied());
        let matches = settings::with_setting_args(<Cli as clap::CommandFactory>::command())
            .try_get_matches_from(argv)?;
        let cli = Cli::from_arg_matches(&matches)?;
        run(cli, &matches)
    }

    /// The default build has no AWS SDK: every `--aws` command says how to get one, and touches
    /// nothing (no data dir is made).
    #[cfg(not(feature = "aws"))]
    #[test]
    fn without_the_aws_feature_aws_commands_say_how_to_build_it() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let data_dir = data_dir.to_str().unwrap();
        for command in [
            &["events", "list"][..],
            &["replay", "--status", "failed", "--dry-run"],
            &["redrive"],
            &["serve", "--listen", "127.0.0.1:0"],
        ] {
            let mut args = vec!["--aws", "--data-dir", data_dir];
            args.extend_from_slice(command);
            let error = run_args(&args).unwrap_err().to_string();
            assert!(
                error.contains("built without AWS support")
                    && error.contains("cargo build --release -p zofhook --features aws"),
                "{command:?}: {error}"
            );
        }
        assert!(!dir.path().join("data").exists());
    }

    /// The same build runs the embedded store: `events list` on an empty data dir.
    #[test]
    fn the_embedded_store_needs_no_aws() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let code = run_args(&["--data-dir", data_dir.to_str().unwrap(), "events", "list"]).unwrap();
        assert_eq!(code, 0);
        assert!(data_dir.join("zofhook.db").exists());
    }
}
