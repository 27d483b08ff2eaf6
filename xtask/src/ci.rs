//! `cargo xtask ci`: the whole test suite, as CI and the README run it.
//!
//! 1. installs what the tests need and the machine lacks (Debian's `chromium` and
//!    `chromium-driver` for the browser tests; python3-openid, oauthlib (with `cryptography` and
//!    `PyJWT` for its RSA-SHA1 signer), gpsoauth and python-gcm from PyPI into `target/py` for the
//!    interop tests, when `python3` is present; oauth4webapi and node-gcm from npm into
//!    `target/node`, when `node` and `npm` are present),
//! 2. finds PostgreSQL on 127.0.0.1:5432 (starting the local cluster if it is installed but
//!    stopped) and points the PostgreSQL tests at it, or says loudly that they are skipped,
//! 3. runs `cargo fmt --check`, `cargo clippy --all-targets -D warnings`, and every test with the
//!    browser tests on (nextest when installed, else `cargo test`).
//!
//! 4. runs the benchmark harness once as a smoke test (`bench --quick --dev` on a few scenarios):
//!    it must run and produce numbers; no speed is asserted.
//!
//! Every fuzz target runs in the suite without instrumentation (`crates/fuzz-targets/tests/smoke.rs`:
//! its kept corpus and a seeded mutation smoke); `--fuzz` also runs `fuzz --smoke`
//! (builds the instrumented fuzz crate, more than 13 minutes from a clean checkout on 2 cores, then
//! a few seconds of fuzzing per target). `cargo xtask fuzz` is the fuzzer.
//!
//! `--no-lint` skips fmt and clippy; `--no-browser` skips the browser tests; `--no-bench` skips
//! the harness smoke test.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, format_err};

/// Every optional feature the suite covers: browser tests and the client's AuthSub signing.
const ALL_FEATURES: &str = "tessera/browser,tessera-client/authsub-secure";

pub(crate) const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let lint = !args.iter().any(|it| it == "--no-lint");
    let browser = !args.iter().any(|it| it == "--no-browser");
    let bench = !args.iter().any(|it| it == "--no-bench");
    let fuzz = args.iter().any(|it| it == "--fuzz");
    if browser {
        ensure_chromium()?;
    }
    ensure_python_packages();
    ensure_node_packages();
    let pg = ensure_postgres();
    if lint {
        cargo(&["fmt", "--all", "--", "--check"], &[])?;
        cargo(
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--features",
                ALL_FEATURES,
                "--",
                "-D",
                "warnings",
            ],
            &[],
        )?;
    }
    let mut env: Vec<(&str, String)> = Vec::new();
    match &pg {
        Some(url) => env.push(("TESSERA_TEST_DATABASE_URL", url.clone())),
        None => eprintln!(
            "\n*** SKIPPING the PostgreSQL tests: no server answers on 127.0.0.1:5432 ***\n"
        ),
    }
    let features = if browser { ALL_FEATURES } else { "tessera-client/authsub-secure" };
    let nextest = Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|it| it.status.success());
    if nextest {
        let a = vec!["nextest", "run", "--workspace", "--no-fail-fast", "--features", features];
        cargo(&a, &env)?;
    } else {
        let a = vec!["test", "--workspace", "--no-fail-fast", "--features", features];
        cargo(&a, &env)?;
    }
    if bench {
        bench_smoke()?;
    }
    if fuzz {
        crate::fuzz::run(&["--smoke".to_owned()])?;
    }
    Ok(())
}

/// The benchmark harness still works: a quick dev-profile run of a few scenarios writes a report
/// whose scenarios carry numbers. Speed is never asserted here.
fn bench_smoke() -> anyhow::Result<()> {
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-smoke");
    let out_text = out.to_string_lossy().into_owned();
    let only =
        "discovery,client_credentials,session,signin,clientlogin,authsub_tokeninfo,crypto,push";
    // SQLite only: the smoke shows the harness runs; PostgreSQL's store is covered by the
    // conformance and two-node tests above, and its numbers come from full runs.
    let args = ["xtask", "bench", "--quick", "--dev", "--no-postgres", "--only", only, "--out"];
    let mut args = args.to_vec();
    args.push(&out_text);
    cargo(&args, &[])?;
    let report =
        std::fs::read_to_string(out.join("report.json")).context("reading the smoke report")?;
    let report: serde_json::Value =
        serde_json::from_str(&report).context("parsing the smoke report")?;
    let measured = report["scenarios"]
        .as_array()
        .map(|it| {
            it.iter()
                .flat_map(|scenario| scenario["results"].as_array().cloned().unwrap_or_default())
                .filter(|result| result["result"]["rps"].as_f64().is_some_and(|rps| rps > 0.0))
                .count()
        })
        .unwrap_or(0);
    if measured == 0 {
        return Err(format_err!("the benchmark smoke run produced no numbers"));
    }
    eprintln!("bench smoke: {measured} measured results in {}", out.display());
    Ok(())
}

fn cargo(args: &[&str], env: &[(&str, String)]) -> anyhow::Result<()> {
    eprintln!("$ cargo {}", args.join(" "));
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let status = command.status().with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        return Err(format_err!("cargo {} failed", args.join(" ")));
    }
    Ok(())
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|it| it.status.success())
}

/// Installs Debian's Chromium and its WebDriver when they are missing.
fn ensure_chromium() -> anyhow::Result<()> {
    if have("chromium") && have("chromedriver") {
        return Ok(());
    }
    eprintln!("installing chromium and chromium-driver for the browser tests");
    let sudo = if have("sudo") && !is_root() { "sudo " } else { "" };
    let script = format!(
        "{sudo}apt-get update -q && DEBIAN_FRONTEND=noninteractive {sudo}apt-get install -y -q chromium chromium-driver"
    );
    let status = Command::new("sh").args(["-c", &script]).status().context("running apt-get")?;
    if !status.success() || !have("chromedriver") {
        return Err(format_err!(
            "could not install chromium and chromium-driver (pass --no-browser to skip the browser tests)"
        ));
    }
    Ok(())
}

/// The Python packages the interop tests import from `target/py`: the directory each installs
/// and its name on PyPI (python-openid: an independent OpenID 2.0 relying party; oauthlib, whose
/// RSA-SHA1 signer needs `cryptography` and `PyJWT`: an independent OAuth 1.0a consumer; gpsoauth:
/// an independent device-login client; python-gcm: an independent GCM sender).
const PYTHON_PACKAGES: &[(&str, &str)] = &[
    ("openid", "python3-openid"),
    ("oauthlib", "oauthlib"),
    ("cryptography", "cryptography"),
    ("jwt", "PyJWT"),
    ("gpsoauth", "gpsoauth"),
    ("gcm", "python-gcm"),
];

/// Installs the missing [`PYTHON_PACKAGES`] into `target/py` in one `pip` run. Without `python3`
/// the interop tests skip themselves loudly.
fn ensure_python_packages() {
    if !have("python3") {
        eprintln!("\n*** no python3: the Python interop tests will be skipped ***\n");
        return;
    }
    let missing: Vec<&str> = PYTHON_PACKAGES
        .iter()
        .filter(|(dir, _)| !std::path::Path::new("target/py").join(dir).exists())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return;
    }
    eprintln!("installing {} into target/py for the interop tests", missing.join(", "));
    let status = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--upgrade", "--target", "target/py"])
        .args(&missing)
        .status();
    if !status.is_ok_and(|it| it.success()) {
        eprintln!(
            "\n*** could not install {}; their interop tests will fail ***\n",
            missing.join(", ")
        );
    }
}

/// The npm packages the interop tests load from `target/node` (oauth4webapi: an independent
/// OAuth 2.0 client with PAR and DPoP; node-gcm: an independent GCM sender).
const NODE_PACKAGES: &[&str] = &["oauth4webapi", "node-gcm"];

/// Installs the missing [`NODE_PACKAGES`] into `target/node` in one `npm` run. Without `node`
/// or `npm` the interop tests skip themselves loudly.
fn ensure_node_packages() {
    if !have("node") || !have("npm") {
        eprintln!("\n*** no node or npm: the Node.js interop tests will be skipped ***\n");
        return;
    }
    let missing: Vec<&str> = NODE_PACKAGES
        .iter()
        .filter(|it| !std::path::Path::new("target/node/node_modules").join(it).exists())
        .copied()
        .collect();
    if missing.is_empty() {
        return;
    }
    eprintln!("installing {} into target/node for the interop tests", missing.join(", "));
    let status = Command::new("npm")
        .args(["install", "--silent", "--prefix", "target/node"])
        .args(&missing)
        .status();
    if !status.is_ok_and(|it| it.success()) {
        eprintln!(
            "\n*** could not install {}; their interop tests will fail ***\n",
            missing.join(", ")
        );
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|it| String::from_utf8_lossy(&it.stdout).trim() == "0")
}

fn pg_answers() -> bool {
    let addr: SocketAddr = ([127, 0, 0, 1], 5432).into();
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// The PostgreSQL URL for the tests: the configured one, or the local server (started if it is
/// installed but stopped).
fn ensure_postgres() -> Option<String> {
    if let Ok(url) = std::env::var("TESSERA_TEST_DATABASE_URL") {
        return Some(url);
    }
    if pg_answers() {
        return Some(PG_URL.to_owned());
    }
    if have("pg_ctlcluster") {
        let script = "for v in $(ls /etc/postgresql 2>/dev/null); do pg_ctlcluster --skip-systemctl-redirect $v main start; done";
        let _ = Command::new("sh").args(["-c", script]).status();
        for _ in 0..50 {
            if pg_answers() {
                return Some(PG_URL.to_owned());
            }
            std::thread::park_timeout(Duration::from_millis(100));
        }
    }
    None
}
