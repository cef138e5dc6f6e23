//! One file per command, each owning its arguments and its run function (cargo's
//! `src/bin/cargo/commands/` is the pattern); `main.rs` composes them.

pub mod console;
pub mod events;
pub mod listen;
pub mod migrate;
pub mod redrive;
pub mod register;
pub mod replay;
pub mod send;
pub mod serve;
