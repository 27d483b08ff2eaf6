//! `cargo xtask fuzz`: runs every fuzz target of the `fuzz/` crate (cargo-fuzz layout, libFuzzer).
//! Each target is one call into `crates/fuzz-targets`, which holds its body; the normal test suite
//! runs the same functions uninstrumented over the kept corpus and a seeded mutation smoke
//! (`crates/fuzz-targets/tests/smoke.rs`). This is the coverage-guided run.
//!
//! The targets are read from `fuzz/Cargo.toml` (each `[[bin]]`), so a target added there runs here
//! without touching this file. Each run reads the seeds and regressions kept in the repository
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`) and writes the corpus it grows to
//! `fuzz/target/corpus/<target>/`, which is not kept. A crash stops the run with the input in
//! `fuzz/artifacts/<target>/`; make it a regression test and copy it to `fuzz/regressions/`.
//!
//! libFuzzer instrumentation needs `-Z` flags, which stable rustc accepts only with
//! `RUSTC_BOOTSTRAP=1`; it is set for the fuzz build alone (its own workspace and target
//! directory), never for the server's build. No sanitizer runs (`-s none`): the crates forbid
//! `unsafe`, so what fuzzing looks for is panics, overflows (debug assertions are on) and hangs.
//!
//! `cargo xtask fuzz` runs each target for 10 million executions; `--smoke` replays the kept
//! inputs and fuzzes each target for a few seconds (`cargo xtask ci` does this); `--runs N` and
//! target names narrow a run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, format_err};

const FULL_RUNS: u64 = 10_000_000;
const SMOKE_SECONDS: u64 = 3;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `[[bin]]` names of `fuzz/Cargo.toml`, in file order.
pub(crate) fn targets(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
            continue;
        }
        if in_bin
            && let Some(value) = line.strip_prefix("name").map(str::trim_start)
            && let Some(value) = value.strip_prefix('=')
        {
            let name = value.trim().trim_matches('"');
            if !name.is_empty() {
                out.push(name.to_owned());
            }
        }
    }
    out
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let smoke = args.iter().any(|it| it == "--smoke");
    let mut runs = FULL_RUNS;
    let mut only = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--smoke" => {}
            "--runs" => {
                let value = rest.next().ok_or_else(|| format_err!("--runs needs a number"))?;
                runs = value.parse().context("--runs")?;
            }
            name => only.push(name.to_owned()),
        }
    }
    ensure_cargo_fuzz()?;
    let fuzz = root().join("fuzz");
    let manifest =
        std::fs::read_to_string(fuzz.join("Cargo.toml")).context("reading fuzz/Cargo.toml")?;
    let mut targets = targets(&manifest);
    if !only.is_empty() {
        targets.retain(|it| only.contains(it));
    }
    if targets.is_empty() {
        return Err(format_err!("no fuzz targets to run"));
    }
    fuzz_cargo(&["build", "-s", "none"])?;
    let mut report = Vec::new();
    for target in &targets {
        let grown = fuzz.join("target/corpus").join(target);
        std::fs::create_dir_all(&grown)?;
        let mut dirs = vec![grown.to_string_lossy().into_owned()];
        for kept in ["corpus", "regressions"] {
            let dir = fuzz.join(kept).join(target);
            if dir.is_dir() {
                dirs.push(dir.to_string_lossy().into_owned());
            }
        }
        let limit = if smoke {
            format!("-max_total_time={SMOKE_SECONDS}")
        } else {
            format!("-runs={runs}")
        };
        let started = Instant::now();
        let mut args = vec!["run", "-s", "none", target.as_str()];
        args.extend(dirs.iter().map(String::as_str));
        args.extend([
            "--",
            limit.as_str(),
            "-max_len=16384",
            "-timeout=10",
            "-print_final_stats=1",
        ]);
        fuzz_cargo(&args).with_context(|| format!("fuzz target {target} failed"))?;
        report.push(format!("{target}: {:.0} s", started.elapsed().as_secs_f64()));
    }
    eprintln!("fuzz: {}", report.join(", "));
    Ok(())
}

fn fuzz_cargo(args: &[&str]) -> anyhow::Result<()> {
    eprintln!("$ RUSTC_BOOTSTRAP=1 cargo fuzz {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .arg("fuzz")
        .args(args)
        .current_dir(root())
        .env("RUSTC_BOOTSTRAP", "1")
        .status()
        .context("running cargo fuzz")?;
    if !status.success() {
        return Err(format_err!("cargo fuzz {} failed", args.first().unwrap_or(&"")));
    }
    Ok(())
}

/// cargo-fuzz from crates.io, when it is missing.
fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let present = Command::new(&cargo)
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|it| it.status.success());
    if present {
        return Ok(());
    }
    eprintln!("installing cargo-fuzz");
    let status = Command::new(&cargo)
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .context("running cargo install cargo-fuzz")?;
    if !status.success() {
        return Err(format_err!("could not install cargo-fuzz"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_come_from_the_bin_sections() {
        let manifest = "[package]\nname = \"tessera-fuzz\"\n\n[[bin]]\nname = \"a\"\npath = \"x\"\n\n[dependencies]\nname = \"no\"\n[[bin]]\nname=\"b\"\n";
        assert_eq!(targets(manifest), vec!["a".to_owned(), "b".to_owned()]);
    }
}
