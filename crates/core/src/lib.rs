//! zof-webhooks core: everything that is not an entrypoint. The Lambdas and `zofhook` build a
//! [`receive::Receiver`] and a [`process::Processor`] from these parts and adapt their requests.

#[cfg(feature = "aws")]
pub mod aws;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod downstream;
pub mod event;
pub mod ledger;
pub mod logging;
pub mod metrics;
pub mod process;
pub mod protocol;
pub mod queue;
pub mod receive;
pub mod replay;
pub mod secrets;
pub mod signature;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use clock::{millis, now_ms, parse_rfc3339, rfc3339, system_clock, within, Clock};
