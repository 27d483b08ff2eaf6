//! The `tessera` command: `serve`, `migrate`, `check-config` and the `admin` tools.

mod cli;

use std::process::ExitCode;

use clap::Parser as _;

/// The server allocates and frees small buffers for every request on every worker; mimalloc's
/// per-thread free lists serve them without glibc's arena locks and consolidation passes
/// (docs/dependencies.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => return cli::fail(format_args!("starting the runtime: {err}")),
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(err) => cli::fail(format_args!("{err:#}")),
    }
}
