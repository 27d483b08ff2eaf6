//! Project automation: `cargo xtask ci` (the whole test suite), `cargo xtask bench` (the benchmark harness),
//! `cargo xtask fuzz` (every fuzz target).

// Telling a person what runs and what failed is what these commands do.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod ci;
mod fuzz;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = match args.first().map(String::as_str) {
        Some("ci") => ci::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        _ => Err(anyhow::format_err!("usage: cargo xtask <ci|bench|fuzz> [options]")),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}
