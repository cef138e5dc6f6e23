//! `zofhook redrive`: dead-lettered events back to the queue, until the DLQ answers empty.

use crate::global::Global;
use crate::store::{Backend, Needs};
use anyhow::Result;
use zofhook_core::config::Config;

pub async fn redrive(global: &Global, config: &Config) -> Result<i32> {
    let backend = Backend::open(global, config, Needs::REDRIVE).await?;
    let moved = backend.inbox()?.redrive().await?;
    println!("moved {moved} dead-lettered event(s) back to the queue");
    Ok(0)
}
