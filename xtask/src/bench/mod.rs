//! `cargo xtask bench`: the benchmark harness.

pub(crate) fn run(_args: &[String]) -> anyhow::Result<()> {
    Err(anyhow::format_err!("bench: not wired yet"))
}
