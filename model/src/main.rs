//! `make model`: the delivery protocol's model check at the depth given on the command line,
//! depth first (it keeps only the states' fingerprints: a breadth-first run of `AA 2 2 1` filled
//! 21 GB before it ended).
//!   zofhook-model [DELIVERIES] [WORKERS] [FAULTS] [REPLAYS] [beside|after|either] [no-mark]
//! DELIVERIES is a string of bodies, one letter per delivery (`AAB`: two of body A, one of B).
//! `no-mark` checks the protocol without the `enqueued` mark (RELIABILITY.md: it fails).

use stateright::{Checker, Model};
use std::time::Instant;
use zofhook_model::{Mark, Protocol, Sends};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let bodies = arg(0, "AAB").chars().map(|c| u8::from(c != 'A')).collect();
    let number = |i: usize, default: &str| -> u8 {
        arg(i, default).parse().unwrap_or_else(|_| {
            eprintln!(
                "usage: zofhook-model [DELIVERIES] [WORKERS] [FAULTS] [REPLAYS] [beside|after|either] [no-mark]"
            );
            std::process::exit(2)
        })
    };
    let protocol = Protocol {
        bodies,
        workers: usize::from(number(1, "2")),
        faults: number(2, "3"),
        replays: number(3, "1"),
        sends: match arg(4, "either").as_str() {
            "beside" => Sends::BesidePut,
            "after" => Sends::AfterPut,
            _ => Sends::Either,
        },
        mark: match arg(5, "").as_str() {
            "no-mark" => Mark::Dropped,
            _ => Mark::Kept,
        },
    };
    println!("checking {protocol:?}");
    let started = Instant::now();
    let checker = protocol
        .checker()
        .threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
        .spawn_dfs()
        .join();
    let failed = zofhook_model::report(&checker);
    println!(
        "states: {} unique of {} visited, depth {}, in {:.1} s",
        checker.unique_state_count(),
        checker.state_count(),
        checker.max_depth(),
        started.elapsed().as_secs_f64()
    );
    if failed {
        std::process::exit(1);
    }
}
