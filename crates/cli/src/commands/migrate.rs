//! `zofhook --aws migrate`: the one-off step of the time index upgrade.

use crate::global::Global;
#[cfg(feature = "aws")]
use crate::store::{Backend, Needs};
use anyhow::{bail, Result};
use zofhook_core::config::Config;

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
        bail!("{}", crate::store::NO_AWS);
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
