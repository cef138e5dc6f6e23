//! `zofhook`: the zof-webhooks pipeline as one local binary (docs/design.md, "The CLI").
//! Each command is a room in `commands/`, owning its arguments and its run function; this file
//! composes them, so nothing below imports upward.
//!
//! `serve` runs the receive pipeline and the worker in one process on an embedded SQLite store
//! (or on DynamoDB + SQS with `--aws`); `send`, `sign` and `verify` make and check signed events;
//! `events` reads the ledger; `redrive` brings dead-lettered events back.

mod commands;
mod console;
mod global;
mod listener;
mod lock;
mod secret;
mod settings;
mod store;

use anyhow::Result;
use clap::{FromArgMatches, Parser, Subcommand};
use commands::{
    console as console_command, events, listen, migrate, redrive, register, replay, send, serve,
};
use global::Global;

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
    Events(events::EventsCommand),
    /// Send events through again from their archived bodies (by id, or a selection).
    Replay(replay::ReplayArgs),
    /// Move dead-lettered events back to the queue.
    Redrive,
    /// Serve the console (the events, replay, redrive) without the webhook.
    Console(console_command::ConsoleArgs),
    /// Upgrade a deployed ledger to the time index by_time: give the records written before it
    /// their index key (once, between the upgrade's two deployments; README).
    Migrate,
    /// Subscribe an endpoint through Zof's API (POST /v1/webhooks) and print the webhook id;
    /// store a returned signing secret where the receiver reads it.
    Register(register::RegisterArgs),
    /// Follow the ledger (with --aws, the deployed stack's) and forward each event accepted from
    /// now on to a local handler, signed with the local secret; Ctrl-C stops.
    Listen(listen::ListenArgs),
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
            Command::Events(command) => events::events(&cli.global, &config, command).await,
            Command::Replay(args) => replay::replay(&cli.global, &config, args).await,
            Command::Redrive => redrive::redrive(&cli.global, &config).await,
            Command::Console(args) => console_command::run(&cli.global, &config, args).await,
            Command::Migrate => migrate::migrate(&cli.global, &config).await,
            Command::Register(args) => register::register(&cli.global, &config, args).await,
            Command::Listen(args) => listen::listen(&cli.global, &config, args).await,
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
