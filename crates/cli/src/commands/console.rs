//! `zofhook console`: the console alone (the router and its guard are `crate::console`).

use crate::console::{router, Access};
use crate::global::Global;
use crate::listener::{shutdown_signal, HttpArgs};
use crate::store::{Backend, Needs};
use anyhow::{Context, Result};
use clap::Args;
use zofhook_core::config::Config;

/// `zofhook console`: the console alone, against the embedded store or (with `--aws`) the
/// deployed table and queues, on 127.0.0.1:3001 by default.
#[derive(Args, Debug)]
pub struct ConsoleArgs {
    /// Address to listen on (loopback by default: the console is an admin surface).
    #[arg(long, env = "ZOFHOOK_CONSOLE_LISTEN", default_value = "127.0.0.1:3001")]
    pub listen: String,
    #[command(flatten)]
    pub http: HttpArgs,
}

pub async fn run(global: &Global, config: &Config, args: ConsoleArgs) -> Result<i32> {
    let backend = Backend::open(global, config, Needs::REPLAY).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    let addr = listener.local_addr()?;
    let guard = args.http.guard(addr);
    if matches!(guard.access, Access::Off) {
        eprintln!(
            "zofhook console: {addr} is not loopback and no --console-token was given: the console answers 401"
        );
    }
    let app = router(
        backend.ledger()?,
        backend.queue()?,
        Some(backend.inbox()?),
        guard,
    );
    println!(
        "zofhook console: http://{addr}/ on {}",
        backend.describe(global)
    );
    crate::listener::serve(listener, app, args.http.limits(), shutdown_signal()).await;
    Ok(0)
}
