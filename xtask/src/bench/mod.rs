//! `cargo xtask bench`: the benchmark harness (see docs/benchmarks.md).
//!
//! Builds tessera and the ceiling crate (bench/ceiling), installs the peer (bench/peer), starts
//! every server on loopback, then measures scenario by scenario, each target in turn, with a CPU
//! canary before and after; writes `report.md` and `report.json` into the output directory and,
//! after a complete full run, the report into docs/benchmarks.md.

mod http;
mod load;
mod oauth1;
mod peer;
mod procs;
mod push;
mod report;
mod scenarios;
mod statements;
mod stats;
mod sys;
mod tessera;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::Command;

use load::{Fixtures, LoadConfig, Plan, Req, Target};
use procs::Server;
use report::{Canary, GrowthStep, Outcome, Report, ScenarioReport, Settings, System, SystemResult};
use scenarios::Scenario;
use tessera::Tessera;

const USAGE: &str = "\
usage: cargo xtask bench [--quick] [--dev] [--only NAME[,NAME...]] [--out DIR]
                         [--concurrency N] [--loadgen-threads N] [--no-tessera] [--no-postgres]
                         [--write-docs]

  --quick            a few seconds per scenario, 10k/100k credentials (the test suite's smoke run)
  --dev              build tessera and the ceilings in the dev profile: a smoke test of the
                     harness itself (the test suite's), never a measurement
  --only NAMES       scenarios by name, or sections: ceilings, crypto, resources, growth,
                     statements (SQL statements per request of the scenarios run; of every
                     scenario, without load, when no scenario is named), push (push delivery
                     to 10k WebSocket devices, 1k with --quick)
  --out DIR          where report.md, report.json and the logs go (default: bench-out/)
  --concurrency N    connections per target (default 32; password scenarios use 2 per core)
  --loadgen-threads  threads of the load generator (default 1)
  --no-tessera       peer, ceilings and crypto only (for working on the harness itself)
  --no-postgres      tessera on SQLite only, even where PostgreSQL answers
  --write-docs       put the report into docs/benchmarks.md even if the run is partial
  tessera also runs on PostgreSQL, with 1 and 2 processes on one database, when a server answers
  on 127.0.0.1:5432 (as postgres, trust authentication) or TESSERA_BENCH_DATABASE_URL names one";

/// The command as the report records it: without `--out DIR`, which says where the report went,
/// not what was measured (and would put a local path into docs/benchmarks.md).
fn recorded_command(args: &[String]) -> String {
    let mut words = vec!["cargo xtask bench"];
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--out" {
            args.next();
        } else if !arg.starts_with("--out=") {
            words.push(arg);
        }
    }
    words.join(" ")
}

const SECTIONS: [&str; 6] = ["ceilings", "crypto", "resources", "growth", "statements", "push"];

/// The PostgreSQL server the harness uses when one answers on its usual local port and no
/// `TESSERA_BENCH_DATABASE_URL` names another; the database only hosts `CREATE DATABASE`.
const LOCAL_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Debug, PartialEq)]
struct Options {
    quick: bool,
    dev: bool,
    only: Option<BTreeSet<String>>,
    out: Option<PathBuf>,
    concurrency: usize,
    loadgen_threads: usize,
    no_tessera: bool,
    no_postgres: bool,
    write_docs: bool,
    help: bool,
}

impl Options {
    fn parse(args: &[String]) -> anyhow::Result<Options> {
        let mut o = Options {
            quick: false,
            dev: false,
            only: None,
            out: None,
            concurrency: 32,
            loadgen_threads: 1,
            no_tessera: false,
            no_postgres: false,
            write_docs: false,
            help: false,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
                _ => (arg.as_str(), None),
            };
            let mut value = || -> anyhow::Result<String> {
                inline
                    .clone()
                    .or_else(|| it.next().cloned())
                    .with_context(|| format!("{flag} needs a value"))
            };
            match flag {
                "--quick" => o.quick = true,
                "--dev" => o.dev = true,
                "--no-tessera" => o.no_tessera = true,
                "--no-postgres" => o.no_postgres = true,
                "--write-docs" => o.write_docs = true,
                "-h" | "--help" => o.help = true,
                "--only" => {
                    let names: BTreeSet<String> = value()?
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                    let known: BTreeSet<&str> = scenarios::scenarios()
                        .iter()
                        .map(|s| s.name)
                        .chain(scenarios::ceilings().iter().map(|c| c.0))
                        .chain(SECTIONS)
                        .collect();
                    if let Some(bad) = names.iter().find(|n| !known.contains(n.as_str())) {
                        bail!(
                            "--only: unknown name {bad:?}; known: {}",
                            known.into_iter().collect::<Vec<_>>().join(", ")
                        );
                    }
                    o.only.get_or_insert_with(BTreeSet::new).extend(names);
                }
                "--out" => o.out = Some(PathBuf::from(value()?)),
                "--concurrency" => o.concurrency = value()?.parse().context("--concurrency")?,
                "--loadgen-threads" => {
                    o.loadgen_threads = value()?.parse().context("--loadgen-threads")?
                }
                other => bail!("unknown option {other:?}\n{USAGE}"),
            }
        }
        if o.dev && o.write_docs {
            bail!("--dev builds are not measurements: --write-docs refuses them");
        }
        if o.concurrency == 0 || o.loadgen_threads == 0 {
            bail!("--concurrency and --loadgen-threads must be at least 1");
        }
        Ok(o)
    }

    fn wants(&self, name: &str) -> bool {
        self.only.as_ref().is_none_or(|only| only.contains(name))
    }

    fn complete(&self) -> bool {
        self.only.is_none() && !self.no_tessera && !self.dev
    }
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let opts = Options::parse(args)?;
    if opts.help {
        println!("{USAGE}");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.loadgen_threads)
        .enable_all()
        .build()
        .context("starting the load generator's runtime")?;
    runtime.block_on(bench(opts, args))
}

fn repo_root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().map_or_else(|| xtask.to_owned(), Path::to_owned)
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Fixture values every system shares.
fn common_fixtures() -> Fixtures {
    let mut f = Fixtures::default();
    f.set("resource", peer::RESOURCE);
    // RFC 7636 appendix B: the same verifier for every code is fine for a benchmark (the server
    // still hashes it each time).
    f.set("code_verifier", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    f.set("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    f
}

fn ceiling_fixtures() -> Fixtures {
    let mut f = peer::Peer::fixtures();
    f.set("email", "bench@example.test");
    f.set("password", "correct horse battery staple");
    f
}

/// Run length and sizes for the two modes.
struct Mode {
    cfg: LoadConfig,
    canary: Duration,
    crypto: Duration,
    growth: Vec<u64>,
    /// The longest a growth step may take to seed (projected from the previous step's rate).
    seed_budget: Duration,
    /// Unmeasured load before a growth step's runs: right after seeding gigabytes, the first
    /// seconds go to page faults and to the kernel writing the seed out, not to validation.
    growth_warmup: Duration,
    sessions: u64,
    starts: usize,
}

impl Mode {
    fn new(quick: bool) -> Mode {
        if quick {
            Mode {
                cfg: LoadConfig {
                    warmup: Duration::from_millis(200),
                    runs: 3,
                    run: Duration::from_millis(500),
                    max_requests: 100_000,
                    timeout: Duration::from_secs(10),
                },
                canary: Duration::from_millis(200),
                crypto: Duration::from_millis(300),
                growth: vec![10_000, 100_000],
                seed_budget: Duration::from_secs(60),
                growth_warmup: Duration::from_millis(200),
                sessions: 10_000,
                starts: 5,
            }
        } else {
            Mode {
                cfg: LoadConfig {
                    warmup: Duration::from_secs(1),
                    runs: 3,
                    run: Duration::from_secs(3),
                    max_requests: 3_000_000,
                    timeout: Duration::from_secs(10),
                },
                canary: Duration::from_secs(1),
                crypto: Duration::from_millis(1500),
                growth: vec![10_000, 1_000_000, 10_000_000],
                seed_budget: Duration::from_secs(8 * 60),
                growth_warmup: Duration::from_secs(10),
                sessions: 100_000,
                starts: 5,
            }
        }
    }
}

fn say(started: Instant, what: &str) {
    eprintln!("bench [{:>5.1}s] {what}", started.elapsed().as_secs_f64());
}

/// A running system: its processes' addresses and ids, and what to send it.
#[derive(Clone)]
struct Side {
    addrs: Vec<SocketAddr>,
    pids: Vec<u32>,
    fixtures: Fixtures,
}

impl Side {
    fn of(servers: &[&Server], fixtures: Fixtures) -> Side {
        Side {
            addrs: servers.iter().map(|s| s.addr).collect(),
            pids: servers.iter().map(|s| s.pid).collect(),
            fixtures,
        }
    }

    fn target(&self, label: &str, plan: &Plan, concurrency: usize) -> Target {
        Target {
            label: label.to_owned(),
            addrs: self.addrs.clone(),
            pids: self.pids.clone(),
            plan: plan.clone(),
            fixtures: self.fixtures.clone(),
            concurrency,
        }
    }
}

struct Env {
    mode: Mode,
    cores: usize,
    concurrency: usize,
    password_concurrency: usize,
    ceiling_bin: PathBuf,
    tessera: Option<Side>,
    tessera_pg: Option<Side>,
    tessera_pg2: Option<Side>,
    /// Why tessera's side is missing, when it should be there.
    tessera_absent: Option<String>,
    peer: Option<Side>,
    peer2: Option<Side>,
    /// The ceiling server, run alongside the scenarios that name an HTTP ceiling.
    ceiling: Option<Side>,
}

impl Env {
    async fn canary(&self) -> anyhow::Result<f64> {
        let mut cmd = Command::new(&self.ceiling_bin);
        cmd.args([
            "canary",
            "--millis",
            &self.mode.canary.as_millis().to_string(),
            "--threads",
            &self.cores.to_string(),
        ]);
        let (ok, out, err) = procs::output(cmd, Duration::from_secs(120)).await?;
        if !ok {
            bail!("the canary failed: {err}");
        }
        let v: serde_json::Value =
            serde_json::from_str(out.trim()).context("the canary's output")?;
        v["rsa2048_sign_per_sec"]
            .as_f64()
            .context("the canary's output has no rsa2048_sign_per_sec")
    }

    /// Measures `targets` between two canaries.
    async fn measure(&self, rep: &mut ScenarioReport, targets: Vec<(System, Target)>) {
        let before = self.canary().await.unwrap_or(0.0);
        let (systems, targets): (Vec<System>, Vec<Target>) = targets.into_iter().unzip();
        let results = load::measure(targets, &self.mode.cfg).await;
        let after = self.canary().await.unwrap_or(0.0);
        rep.canary = Some(Canary::new(before, after));
        for (system, r) in systems.into_iter().zip(results) {
            let (result, error) = match r {
                Ok(l) => (Some(l), None),
                Err(e) => (None, Some(e)),
            };
            rep.results.push(SystemResult { system, result, error });
        }
    }
}

/// Asks tessera for every route of a plan; a 404 or 405 means the endpoint is not there yet.
async fn probe(addr: SocketAddr, plan: &Plan) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    let mut conn = http::Conn::new(addr);
    for req in plan.requests() {
        if !seen.insert((req.method, req.route())) {
            continue;
        }
        let bytes = http::request(
            req.method,
            req.route(),
            &addr.to_string(),
            &[],
            req.form.map(|_| ("application/x-www-form-urlencoded", &b""[..])),
        );
        match conn.send(&bytes).await {
            Ok(resp) if resp.status == 404 || resp.status == 405 => {
                return Err(format!(
                    "`{} {}` answers {} in this tessera build",
                    req.method,
                    req.route(),
                    resp.status
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(format!("probing `{} {}`: {e}", req.method, req.route())),
        }
    }
    Ok(())
}

fn missing_fixture_reason(plan: &Plan, fixtures: &Fixtures) -> Option<String> {
    let missing: Vec<String> =
        plan.needed_fixtures().into_iter().filter(|f| !fixtures.has(f)).collect();
    if missing.is_empty() {
        return None;
    }
    Some(
        if missing.iter().any(|m| m == "client_id" || m == "client_secret" || m == "redirect_uri") {
            "the `admin dev seed` output has no `oauth_client` {client_id, client_secret, redirect_uri} for the OAuth scenarios"
            .to_owned()
        } else if missing.iter().any(|m| m.starts_with("oauth1_rsa")) {
            "the `admin dev seed` output has no `oauth1_rsa` consumer (run with `--oauth1-rsa-cert`)"
                .to_owned()
        } else if missing.iter().any(|m| m.starts_with("oauth1_")) {
            "the `admin dev seed` output has no `oauth1_hmac` consumer".to_owned()
        } else if missing.iter().any(|m| m.starts_with("jwt_client")) {
            "the `admin dev seed` output has no `jwt_client` {client_id, client_secret} (a client with JWT access tokens)"
                .to_owned()
        } else {
            format!("no fixture for {}", missing.join(", "))
        },
    )
}

async fn run_scenario(env: &Env, sc: &Scenario) -> ScenarioReport {
    let mut rep = ScenarioReport::new(sc.name, sc.title, sc.note);
    rep.ceiling = sc.ceiling.map(str::to_owned);
    let concurrency = if sc.password_bound { env.password_concurrency } else { env.concurrency };
    let concurrency = sc.max_connections.map_or(concurrency, |max| concurrency.min(max));
    let mut targets = Vec::new();
    if let Some(t) = &env.tessera {
        if let Err(reason) = probe(t.addrs[0], &sc.tessera).await {
            rep.outcome = Outcome::Skipped { reason };
            return rep;
        }
        if let Some(reason) = missing_fixture_reason(&sc.tessera, &t.fixtures) {
            rep.outcome = Outcome::Skipped { reason };
            return rep;
        }
        targets
            .push((System::Tessera, t.target(System::Tessera.label(), &sc.tessera, concurrency)));
        for (system, side) in
            [(System::TesseraPg, &env.tessera_pg), (System::TesseraPg2, &env.tessera_pg2)]
        {
            if let Some(side) = side {
                targets.push((system, side.target(system.label(), &sc.tessera, concurrency)));
            }
        }
    } else if let Some(reason) = &env.tessera_absent {
        rep.outcome = Outcome::Skipped { reason: reason.clone() };
        return rep;
    }
    if let (Some(side), Some(plan)) = (&env.peer, &sc.peer) {
        targets.push((System::Peer, side.target(System::Peer.label(), plan, concurrency)));
        if let (Some(side2), true) = (&env.peer2, sc.peer_cluster) {
            targets.push((System::Peer2, side2.target(System::Peer2.label(), plan, concurrency)));
        }
    }
    // The ceiling takes its turns among the scenario's runs, so the fraction compares runs
    // taken seconds apart.
    if let (Some(name), Some(side), false) = (sc.ceiling, &env.ceiling, targets.is_empty())
        && let Some((_, _, plan)) = scenarios::ceilings().into_iter().find(|c| c.0 == name)
    {
        targets.push((System::Ceiling, side.target(name, &plan, concurrency)));
    }
    if targets.is_empty() {
        rep.outcome = Outcome::Skipped {
            reason: "nothing to run it against (no tessera, no peer equivalent)".into(),
        };
        return rep;
    }
    env.measure(&mut rep, targets).await;
    finish(rep)
}

/// A scenario whose tessera side failed its first request failed.
fn finish(mut rep: ScenarioReport) -> ScenarioReport {
    if let Some(e) =
        rep.results.iter().find(|r| r.system == System::Tessera).and_then(|r| r.error.clone())
    {
        rep.outcome = Outcome::Failed { reason: e };
    }
    rep
}

struct Servers(Vec<Server>);

impl Servers {
    async fn stop_all(&mut self) {
        for s in self.0.drain(..) {
            s.stop().await;
        }
    }
}

/// Where tessera runs on PostgreSQL: the server's URL, and whether it was named
/// (`TESSERA_BENCH_DATABASE_URL`) or found on the usual local port.
struct Postgres {
    url: String,
    explicit: bool,
}

/// The PostgreSQL server to run on: the one `TESSERA_BENCH_DATABASE_URL` names, else a local one
/// if something answers on 127.0.0.1:5432; none with `--no-postgres`.
async fn postgres_choice(opts: &Options) -> Option<Postgres> {
    if opts.no_postgres {
        return None;
    }
    if let Ok(url) = std::env::var("TESSERA_BENCH_DATABASE_URL") {
        return Some(Postgres { url, explicit: true });
    }
    let connect = tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], 5432)));
    let answers = matches!(tokio::time::timeout(Duration::from_secs(1), connect).await, Ok(Ok(_)));
    answers.then(|| Postgres { url: LOCAL_POSTGRES.to_owned(), explicit: false })
}

/// A fresh PostgreSQL database next to the one `url` names (psql, CREATE DATABASE): its URL and
/// name, or why there is none.
async fn pg_fresh(url: &str) -> Result<(String, String), String> {
    pg_fresh_named(url, &format!("tessera_bench_{}", std::process::id())).await
}

/// [`pg_fresh`] with the database's name.
async fn pg_fresh_named(url: &str, name: &str) -> Result<(String, String), String> {
    let name = name.to_owned();
    let mut cmd = Command::new("psql");
    cmd.args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", &format!("CREATE DATABASE {name}")]);
    match procs::output(cmd, Duration::from_secs(60)).await {
        Ok((true, _, _)) => match with_database(url, &name) {
            Some(fresh) => Ok((fresh, name)),
            None => {
                pg_drop(url, &name).await;
                Err("could not rewrite the database URL".into())
            }
        },
        Ok((false, _, err)) => Err(format!("could not create a fresh database ({})", err.trim())),
        Err(e) => Err(format!("no psql ({e:#})")),
    }
}

/// The server's version and the settings that decide its plans and commit costs.
async fn pg_describe(url: &str) -> Option<String> {
    let mut cmd = Command::new("psql");
    cmd.args([
        url,
        "-Atc",
        "SELECT current_setting('server_version') || ' (autovacuum ' || \
         current_setting('autovacuum') || ', synchronous_commit ' || \
         current_setting('synchronous_commit') || ', max_connections ' || \
         current_setting('max_connections') || ')'",
    ]);
    match procs::output(cmd, Duration::from_secs(30)).await {
        Ok((true, out, _)) if !out.trim().is_empty() => Some(out.trim().to_owned()),
        _ => None,
    }
}

/// `url` with its database name replaced.
fn with_database(url: &str, db: &str) -> Option<String> {
    let scheme_end = url.find("://")? + 3;
    let rest = &url[scheme_end..];
    let path_start = rest.find(['/', '?']).map_or(url.len(), |i| scheme_end + i);
    let query_start = url[path_start..].find('?').map_or(url.len(), |i| path_start + i);
    Some(format!("{}/{db}{}", &url[..path_start], &url[query_start..]))
}

async fn pg_drop(url: &str, name: &str) {
    let mut cmd = Command::new("psql");
    cmd.args([url, "-q", "-c", &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")]);
    let _ = procs::output(cmd, Duration::from_secs(60)).await;
}

/// The cargo profile flag and output folder for a build.
fn profile(dev: bool) -> (&'static [&'static str], &'static str) {
    if dev { (&[], "debug") } else { (&["--release"], "release") }
}

async fn build_ceiling(root: &Path, dev: bool) -> anyhow::Result<PathBuf> {
    let (flags, folder) = profile(dev);
    eprintln!("bench: cargo build {} (bench/ceiling, target dir bench/target)", flags.join(" "));
    let target = root.join("bench/target");
    let status = Command::new(cargo())
        .arg("build")
        .args(flags)
        .args(["--locked", "--manifest-path"])
        .arg(root.join("bench/ceiling/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .current_dir(root)
        .status()
        .await
        .context("running cargo")?;
    if !status.success() {
        bail!("building bench/ceiling failed ({status})");
    }
    Ok(target.join(folder).join("tessera-bench-ceiling"))
}

/// `tessera_client::IdTokenVerifier` verifying one of tessera's RS256 ID tokens in process, one
/// task per core: the client library's rate beside the raw RS256 verify limit.
async fn verifier_rate(t: &Tessera, side: &Side, env: &Env) -> anyhow::Result<report::CryptoOp> {
    let addr = side.addrs[0];
    let exchange = scenarios::scenarios()
        .into_iter()
        .find(|it| it.name == "code_exchange")
        .context("no code_exchange scenario")?;
    let vars = load::run_once(addr, &exchange.tessera, &side.fixtures)
        .await
        .map_err(|e| anyhow::anyhow!("getting an ID token: {e}"))?;
    let token = vars.get("id_token").context("the code exchange gave no id_token")?;
    let audience = vars.get("client_id").context("no client_id fixture")?;
    let mut cmd = Command::new(&t.verify_rate);
    cmd.args(["--issuer", &format!("http://{addr}"), "--audience", audience, "--token", token]);
    cmd.args(["--millis", &env.mode.crypto.as_millis().to_string()]);
    cmd.args(["--threads", &env.cores.to_string()]);
    let (ok, out, err) = procs::output(cmd, Duration::from_secs(120)).await?;
    if !ok {
        bail!("verify_rate failed: {err}");
    }
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).context("the verify_rate output")?;
    Ok(report::CryptoOp {
        name: report::ID_TOKEN_VERIFIER.to_owned(),
        ops_per_sec: v["ops_per_sec"].as_f64().context("no ops_per_sec")?,
        cpu_us_per_op: v["cpu_us_per_op"].as_f64(),
    })
}

/// Raw operations per second on `threads` threads (all of them, or `only` one).
async fn crypto(
    bin: &Path,
    millis: Duration,
    threads: usize,
    only: Option<&str>,
) -> anyhow::Result<Vec<report::CryptoOp>> {
    let mut cmd = Command::new(bin);
    cmd.args([
        "crypto",
        "--millis",
        &millis.as_millis().to_string(),
        "--threads",
        &threads.to_string(),
    ]);
    if let Some(op) = only {
        cmd.args(["--only", op]);
    }
    let (ok, out, err) = procs::output(cmd, Duration::from_secs(300)).await?;
    if !ok {
        bail!("tessera-bench-ceiling crypto failed: {err}");
    }
    let v: serde_json::Value = serde_json::from_str(out.trim()).context("the crypto output")?;
    let ops = v["ops_per_sec"].as_object().context("the crypto output has no ops_per_sec")?;
    let order = [
        report::RS256_SIGN,
        "rs256_verify",
        "es256_sign",
        "es256_verify",
        "eddsa_sign",
        "eddsa_verify",
        "rsa1024_sha1_verify",
        report::ARGON2,
    ];
    Ok(order
        .iter()
        .filter_map(|k| {
            Some(report::CryptoOp {
                name: (*k).to_owned(),
                ops_per_sec: ops.get(*k)?.as_f64()?,
                cpu_us_per_op: v["cpu_us_per_op"][*k].as_f64(),
            })
        })
        .collect())
}

async fn settle_rss(server: &Server) -> Option<u64> {
    tokio::time::sleep(Duration::from_millis(250)).await;
    server.rss()
}

fn session_plan() -> Plan {
    scenarios::scenarios()
        .into_iter()
        .find(|s| s.name == "session")
        .map(|s| s.tessera)
        .unwrap_or_else(|| Plan::main(Req::get("/accounts/ListAccounts")))
}

#[allow(clippy::too_many_lines, reason = "the run, step by step, reads best in one place")]
async fn bench(opts: Options, args: &[String]) -> anyhow::Result<()> {
    let started = Instant::now();
    let root = repo_root();
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let out_dir = opts.out.clone().unwrap_or_else(|| root.join("bench-out"));
    let out_dir =
        if out_dir.is_absolute() { out_dir } else { std::env::current_dir()?.join(out_dir) };
    let logs = out_dir.join("logs");
    let scratch = out_dir.join("scratch");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    std::fs::create_dir_all(&scratch)?;

    let mode = Mode::new(opts.quick);
    let machine = sys::machine();
    let cores = std::thread::available_parallelism().map_or(machine.cores, usize::from);
    let mut report = Report {
        date: sys::utc_now(),
        command: recorded_command(args),
        quick: opts.quick,
        machine,
        settings: Settings {
            concurrency: opts.concurrency,
            password_concurrency: 2 * cores,
            growth_concurrency: 4,
            warmup_ms: mode.cfg.warmup.as_millis() as u64,
            runs: mode.cfg.runs,
            run_ms: mode.cfg.run.as_millis() as u64,
            max_requests_per_run: mode.cfg.max_requests,
            loadgen_threads: opts.loadgen_threads,
            canary_ms: mode.canary.as_millis() as u64,
            crypto_ms: mode.crypto.as_millis() as u64,
        },
        ..Report::default()
    };

    let chosen: Vec<Scenario> =
        scenarios::scenarios().into_iter().filter(|s| opts.wants(s.name)).collect();
    let want_tessera = !opts.no_tessera
        && (!chosen.is_empty()
            || opts.wants("resources")
            || opts.wants("growth")
            || opts.wants("statements")
            || opts.wants("push"));
    let want_peer = chosen.iter().any(|s| s.peer.is_some());
    let ceiling_names: BTreeSet<&str> = scenarios::ceilings()
        .iter()
        .map(|c| c.0)
        .filter(|name| {
            opts.wants("ceilings")
                || opts.wants(name)
                || chosen.iter().any(|s| s.ceiling == Some(*name))
        })
        .collect();
    let want_crypto = opts.wants("crypto");

    // Builds, one at a time.
    if opts.dev {
        eprintln!(
            "\n*** bench --dev: dev-profile builds; the numbers below test the harness, they measure nothing ***\n"
        );
    }
    let ceiling_bin = build_ceiling(&root, opts.dev).await?;
    let tessera =
        if want_tessera { Some(Tessera::build(&root, &target_dir, opts.dev).await?) } else { None };
    say(started, "built");

    report.versions.push((
        "rustc".into(),
        sys::version_of("rustc", &["-V"]).await.unwrap_or_else(|| "?".into()),
    ));
    if let Some(t) = &tessera {
        let v = sys::version_of(&t.bin.to_string_lossy(), &["--version"]).await;
        report.versions.push(("tessera".into(), v.unwrap_or_else(|| "(no --version)".into())));
    }
    report.versions.push((
        "system node".into(),
        sys::version_of("node", &["--version"]).await.unwrap_or_else(|| "none".into()),
    ));

    let peer = if want_peer {
        match peer::install(&root, &target_dir, opts.quick).await {
            Ok(p) => {
                report.versions.push(("peer node".into(), p.node_version.clone()));
                report.versions.push(("oidc-provider".into(), p.provider_version.clone()));
                Some(p)
            }
            Err(e) if opts.quick => {
                let line = format!(
                    "PEER NOT RUN: installing node oidc-provider from npm failed ({e:#}); no peer ratios in this report"
                );
                eprintln!("\n!!!!!!!! {line}\n");
                report.notes.push(line);
                None
            }
            Err(e) => {
                return Err(
                    e.context("installing the peer (full runs need it; --quick goes on without)")
                );
            }
        }
    } else {
        None
    };
    if peer.is_some() {
        say(started, "peer installed");
    }

    let mut servers = Servers(Vec::new());
    let postgres = if want_tessera { postgres_choice(&opts).await } else { None };
    let mut pg_cleanup: Option<(String, String)> = None;
    // The data directory and database URL of tessera on PostgreSQL, once it runs.
    let mut pg_run: Option<(PathBuf, String)> = None;
    let mut env = Env {
        cores,
        concurrency: opts.concurrency,
        password_concurrency: 2 * cores,
        ceiling_bin: ceiling_bin.clone(),
        tessera: None,
        tessera_pg: None,
        tessera_pg2: None,
        tessera_absent: None,
        peer: None,
        peer2: None,
        ceiling: None,
        mode,
    };

    // tessera on SQLite: seeded, then served.
    if let Some(t) = &tessera {
        let dir = scratch.join("tessera");
        let started_ok = async {
            let (seed, _) = t.seed(&dir, None, 1000, 1000).await?;
            let (server, _) = t.start("tessera", &dir, None, &logs.join("tessera.log")).await?;
            anyhow::Ok((seed, server))
        }
        .await;
        match started_ok {
            Ok((seed, server)) => {
                report.resources.tessera_idle_rss_bytes = settle_rss(&server).await;
                env.tessera = Some(Side::of(&[&server], seed.fixtures()));
                servers.0.push(server);
            }
            Err(e) => {
                let line = format!("tessera could not be seeded and started: {e:#}");
                eprintln!("\n!!!!!!!! {line}\n");
                report.failures.push(line);
                env.tessera_absent = Some("tessera did not start (see the failures above)".into());
            }
        }
        // And on PostgreSQL, one and two processes on one database.
        let url_fresh = match (&postgres, env.tessera.is_some()) {
            (Some(pg), true) => match pg_fresh(&pg.url).await {
                Ok((fresh, db)) => {
                    pg_cleanup = Some((pg.url.clone(), db));
                    Some(fresh)
                }
                Err(reason) if pg.explicit => {
                    report.notes.push(format!(
                        "PostgreSQL: {reason}; using TESSERA_BENCH_DATABASE_URL as given"
                    ));
                    Some(pg.url.clone())
                }
                Err(reason) => {
                    let line = format!(
                        "POSTGRESQL NOT RUN: a server answers on 127.0.0.1:5432, but {reason} \
                         (set TESSERA_BENCH_DATABASE_URL to name one)"
                    );
                    eprintln!("\n!!!!!!!! {line}\n");
                    report.notes.push(line);
                    None
                }
            },
            _ => None,
        };
        if let (Some(server), Some(url_fresh)) = (&postgres, url_fresh) {
            let dir = scratch.join("tessera-pg");
            let pg = async {
                let (seed, _) = t.seed(&dir, Some(&url_fresh), 1000, 1000).await?;
                // The two-process side signs in as an account of its own: measured in turns
                // with the one-process side on the same database, it would otherwise share the
                // account's per-client limits with it (ten live refresh tokens: twenty chains
                // would retire each other's).
                let second = t.seed_second(&dir, Some(&url_fresh), 1000, &seed).await?;
                let (a, _) = t
                    .start("tessera-pg-1", &dir, Some(&url_fresh), &logs.join("tessera-pg-1.log"))
                    .await?;
                let b = t
                    .start("tessera-pg-2", &dir, Some(&url_fresh), &logs.join("tessera-pg-2.log"))
                    .await;
                anyhow::Ok((seed, second, a, b))
            }
            .await;
            match pg {
                Ok((seed, second, a, b)) => {
                    pg_run = Some((dir.clone(), url_fresh.clone()));
                    env.tessera_pg = Some(Side::of(&[&a], seed.fixtures()));
                    match b {
                        Ok((b, _)) => {
                            env.tessera_pg2 = Some(Side::of(&[&a, &b], second.fixtures()));
                            servers.0.push(b);
                        }
                        Err(e) => report.failures.push(format!(
                            "a second tessera process on PostgreSQL did not start: {e:#}"
                        )),
                    }
                    servers.0.push(a);
                }
                Err(e) => {
                    report.failures.push(format!("tessera on PostgreSQL did not start: {e:#}"))
                }
            }
            report.versions.push((
                "PostgreSQL".into(),
                pg_describe(&server.url).await.unwrap_or_else(|| "?".into()),
            ));
        }
    }

    if let Some(p) = &peer {
        match p.start("peer-1", &logs.join("peer-1.log")).await {
            Ok(a) => {
                report.resources.peer_idle_rss_bytes = settle_rss(&a).await;
                env.peer = Some(Side::of(&[&a], peer::Peer::fixtures()));
                match p.start("peer-2", &logs.join("peer-2.log")).await {
                    Ok(b) => {
                        env.peer2 = Some(Side::of(&[&a, &b], peer::Peer::fixtures()));
                        servers.0.push(b);
                    }
                    Err(e) => report
                        .failures
                        .push(format!("the second peer process did not start: {e:#}")),
                }
                servers.0.push(a);
            }
            Err(e) => report.failures.push(format!("the peer did not start: {e:#}")),
        }
    }

    let ceiling_server = if ceiling_names.is_empty() {
        None
    } else {
        let port = procs::free_port()?;
        let mut cmd = Command::new(&ceiling_bin);
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
        let (server, _) = Server::start(
            "ceiling",
            cmd,
            procs::loopback(port),
            &logs.join("ceiling.log"),
            "/readyz",
            Duration::from_secs(30),
        )
        .await?;
        report.resources.ceiling_idle_rss_bytes = settle_rss(&server).await;
        Some(server)
    };
    say(started, "servers up");

    report.canary_baseline = env.canary().await.ok();

    // Ceilings: nothing but HTTP and crypto.
    if let Some(server) = &ceiling_server {
        let side = Side::of(&[server], ceiling_fixtures());
        env.ceiling = Some(side.clone());
        for (name, title, plan) in scenarios::ceilings() {
            if !ceiling_names.contains(name) {
                continue;
            }
            say(started, &format!("ceiling {name}"));
            let mut rep = ScenarioReport::new(name, title, "");
            let concurrency =
                if name == "ceiling_argon2" { env.password_concurrency } else { env.concurrency };
            env.measure(&mut rep, vec![(System::Ceiling, side.target(title, &plan, concurrency))])
                .await;
            if let Some(e) = rep.results.iter().find_map(|r| r.error.clone()) {
                report.failures.push(format!("{name}: {e}"));
            }
            report.ceilings.push(rep);
        }
    }
    if want_crypto {
        say(started, "raw crypto");
        match crypto(&ceiling_bin, env.mode.crypto, cores, None).await {
            Ok(c) => report.crypto = c,
            Err(e) => report.failures.push(format!("raw crypto: {e:#}")),
        }
    }

    for sc in &chosen {
        say(started, &format!("scenario {}", sc.name));
        let rep = run_scenario(&env, sc).await;
        match &rep.outcome {
            Outcome::Skipped { reason } => eprintln!("bench:   skipped: {reason}"),
            Outcome::Failed { reason } => report.failures.push(format!("{}: {reason}", sc.name)),
            Outcome::Ran => {
                for r in &rep.results {
                    if let Some(e) = &r.error {
                        report.failures.push(format!("{} on {}: {e}", sc.name, r.system.label()));
                    }
                }
            }
        }
        report.scenarios.push(rep);
    }
    if let (Some(t), true) = (&tessera, opts.wants("statements")) {
        // The scenarios that ran, or every scenario when none was named (`--only statements`).
        let every = scenarios::scenarios();
        let ran: Vec<(&str, &Plan)> = if chosen.is_empty() {
            every.iter().map(|sc| (sc.name, &sc.tessera)).collect()
        } else {
            chosen
                .iter()
                .filter(|sc| {
                    report.scenarios.iter().any(|r| r.name == sc.name && r.outcome == Outcome::Ran)
                })
                .map(|sc| (sc.name, &sc.tessera))
                .collect()
        };
        let backends = [
            ("SQLite", env.tessera.as_ref(), Some((scratch.join("tessera"), None))),
            ("PostgreSQL", env.tessera_pg.as_ref(), pg_run.clone().map(|(d, u)| (d, Some(u)))),
        ];
        for (backend, side, run) in backends {
            let (Some(side), Some((dir, url)), false) = (side, run, ran.is_empty()) else {
                continue;
            };
            say(started, &format!("statements per request on {backend}"));
            let log = logs.join(format!("tessera-statements-{}.log", backend.to_lowercase()));
            match statements::count_all(
                t,
                backend,
                &dir,
                url.as_deref(),
                &log,
                &ran,
                &side.fixtures,
            )
            .await
            {
                Ok(counts) => report.statements.extend(counts),
                Err(e) => report.failures.push(format!("statements on {backend}: {e:#}")),
            }
        }
    }
    if let (Some(t), Some(side), true) = (&tessera, &env.tessera, want_crypto) {
        say(started, "crypto: IdTokenVerifier in process");
        match verifier_rate(t, side, &env).await {
            Ok(op) => report.crypto.push(op),
            Err(e) => report.failures.push(format!("IdTokenVerifier rate: {e:#}")),
        }
    }
    servers.stop_all().await;
    if let Some(s) = ceiling_server {
        s.stop().await;
    }
    if let Some((url, db)) = &pg_cleanup {
        pg_drop(url, db).await;
    }

    if let (Some(t), true) = (&tessera, env.tessera.is_some()) {
        if opts.wants("resources") {
            say(started, "resources: start-to-ready, RSS with many sessions");
            if let Err(e) = resources(t, &env, &scratch, &logs, &mut report).await {
                report.failures.push(format!("resources: {e:#}"));
            }
        }
        if opts.wants("growth")
            && let Err(e) = growth(t, &env, &scratch, &logs, &mut report, started).await
        {
            report.failures.push(format!("growth: {e:#}"));
        }
        if opts.wants("push")
            && let Err(e) = push_section(
                t,
                opts.quick,
                postgres.as_ref().map(|it| it.url.as_str()),
                &scratch,
                &logs,
                &mut report,
                started,
            )
            .await
        {
            report.failures.push(format!("push: {e:#}"));
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);

    report.duration_s = started.elapsed().as_secs_f64();
    report.evaluate_targets();
    let md = report::render_markdown(&report);
    std::fs::write(out_dir.join("report.md"), &md)?;
    std::fs::write(out_dir.join("report.json"), serde_json::to_string_pretty(&report)?)?;
    println!("{md}");
    if (opts.complete() && !opts.quick) || opts.write_docs {
        let docs = root.join("docs/benchmarks.md");
        let existing = std::fs::read_to_string(&docs).unwrap_or_else(|_| "# Benchmarks\n".into());
        std::fs::write(&docs, report::splice_docs(&existing, &md))?;
        eprintln!("bench: updated {}", docs.display());
    }
    eprintln!(
        "bench: wrote {} and report.json in {:.0} s",
        out_dir.join("report.md").display(),
        report.duration_s
    );
    if !report.failures.is_empty() {
        bail!("{} failure(s):\n- {}", report.failures.len(), report.failures.join("\n- "));
    }
    Ok(())
}

fn median_ms(v: &[f64]) -> Option<f64> {
    stats::median(v)
}

async fn resources(
    t: &Tessera,
    env: &Env,
    scratch: &Path,
    logs: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let log = logs.join("tessera-starts.log");
    // Fresh data dirs: schema, keys, everything from nothing.
    for i in 0..env.mode.starts {
        let dir = scratch.join(format!("fresh-{i}"));
        let (server, took) = t.start("tessera (fresh)", &dir, None, &log).await?;
        server.stop().await;
        report.resources.ready_fresh_ms.push(took.as_secs_f64() * 1e3);
        let _ = std::fs::remove_dir_all(&dir);
    }
    // An existing, seeded data dir: the usual restart.
    let dir = scratch.join("restart");
    t.seed(&dir, None, 1000, 1000).await?;
    let (server, _) = t.start("tessera", &dir, None, &log).await?;
    server.stop().await;
    for _ in 0..env.mode.starts {
        let (server, took) = t.start("tessera (restart)", &dir, None, &log).await?;
        server.stop().await;
        report.resources.ready_restart_ms.push(took.as_secs_f64() * 1e3);
    }
    let _ = std::fs::remove_dir_all(&dir);
    report.resources.ready_fresh_median_ms = median_ms(&report.resources.ready_fresh_ms);
    report.resources.ready_restart_median_ms = median_ms(&report.resources.ready_restart_ms);

    // Many live sessions.
    let dir = scratch.join("sessions");
    let (seed, took) = t.seed(&dir, None, env.mode.sessions, 0).await?;
    let (mut server, _) =
        t.start("tessera (sessions)", &dir, None, &logs.join("tessera-sessions.log")).await?;
    let idle = settle_rss(&server).await;
    let mut conn = http::Conn::new(server.addr);
    let mut bad = 0;
    for cookie in &seed.session_cookies {
        let req = http::request(
            "GET",
            "/accounts/ListAccounts",
            &server.addr.to_string(),
            &[("cookie".into(), format!("{}={cookie}", seed.cookie_name))],
            None,
        );
        if !matches!(conn.send(&req).await, Ok(r) if r.status == 200) {
            bad += 1;
        }
    }
    let after = server.rss();
    let alive = server.alive();
    server.stop().await;
    if bad > 0 || !alive {
        report.failures.push(format!(
            "with {} sessions: {bad} of {} session validations failed{}",
            env.mode.sessions,
            seed.session_cookies.len(),
            if alive { "" } else { " (the server died)" }
        ));
    }
    report.resources.sessions = Some(report::Sessions100k {
        sessions: env.mode.sessions,
        seed_s: took.as_secs_f64(),
        idle_rss_bytes: idle,
        rss_after_validation_bytes: after,
        db_bytes: procs::dir_size(&dir),
    });
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn growth(
    t: &Tessera,
    env: &Env,
    scratch: &Path,
    logs: &Path,
    report: &mut Report,
    started: Instant,
) -> anyhow::Result<()> {
    let plan = session_plan();
    // Seconds per seeded credential, from the last step.
    let mut seed_rate: Option<f64> = None;
    for &n in &env.mode.growth {
        if let Some(projected) = seed_rate.map(|r| r * n as f64)
            && projected > env.mode.seed_budget.as_secs_f64()
        {
            let line = format!(
                "GROWTH STEP {} SKIPPED: `tessera admin dev seed` seeds {:.0} credentials/s here, so {} would take \
                 {:.0} min (the budget is {:.0} min, to keep the full run under 20 minutes)",
                stats::fmt_count(n),
                1.0 / seed_rate.unwrap_or(1.0),
                stats::fmt_count(n),
                projected / 60.0,
                env.mode.seed_budget.as_secs_f64() / 60.0
            );
            eprintln!("\n!!!!!!!! {line}\n");
            report.notes.push(line);
            continue;
        }
        say(started, &format!("growth: seeding {} credentials", stats::fmt_count(n)));
        let dir = scratch.join(format!("growth-{n}"));
        let (seed, took) = t.seed(&dir, None, 1000, n).await?;
        seed_rate = Some(took.as_secs_f64() / (n + 1000) as f64);
        // Written out before the server starts, so that writeback does not run during the runs.
        if let Err(e) = Command::new("sync").status().await {
            eprintln!("bench: sync after seeding failed: {e}");
        }
        let (server, _) = t
            .start("tessera (growth)", &dir, None, &logs.join(format!("tessera-growth-{n}.log")))
            .await?;
        let side = Side::of(&[&server], seed.fixtures());
        let target = side.target(
            &format!("session @ {}", stats::fmt_count(n)),
            &plan,
            report.settings.growth_concurrency,
        );
        let cfg = LoadConfig { warmup: env.mode.growth_warmup, ..env.mode.cfg.clone() };
        let result = load::measure(vec![target], &cfg).await.pop();
        server.stop().await;
        let db_bytes = procs::dir_size(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        match result {
            Some(Ok(l)) => report.growth.push(GrowthStep {
                credentials: n,
                seed_s: took.as_secs_f64(),
                db_bytes,
                rps: l.rps,
                p50_us: l.p50_us,
                p99_us: l.p99_us,
                errors: l.errors,
                peak_rss_bytes: l.peak_rss_bytes,
            }),
            Some(Err(e)) => bail!("session validation with {n} credentials: {e}"),
            None => bail!("session validation with {n} credentials: no result"),
        }
    }
    Ok(())
}

/// The `push` section (see `push.rs`): on SQLite, one server on its own data dir; on PostgreSQL
/// (when a server is there), two servers on one fresh database, the devices connected to the
/// first and the sender posting to the second, so that every message crosses the database
/// wake-up. Each server is started with the per-minute push quotas off and room for every
/// device's connection from the one loopback address.
async fn push_section(
    t: &Tessera,
    quick: bool,
    postgres: Option<&str>,
    scratch: &Path,
    logs: &Path,
    report: &mut Report,
    started: Instant,
) -> anyhow::Result<()> {
    let mode = push::PushMode::new(quick);
    let needed = push::files_needed(mode.devices);
    if let Some(limit) = push::open_file_limit().filter(|limit| *limit < needed) {
        let line = format!(
            "PUSH NOT RUN: {} device connections need {needed} open files on each side, and the \
             limit here is {limit} (raise it with `ulimit -n {needed}`)",
            stats::fmt_count(mode.devices)
        );
        eprintln!("\n!!!!!!!! {line}\n");
        report.notes.push(line);
        return Ok(());
    }
    let mut failures = Vec::new();
    if let Err(e) = push_on(t, &mode, None, scratch, logs, report, started).await {
        failures.push(format!("SQLite: {e:#}"));
    }
    if let Some(url) = postgres {
        match pg_fresh_named(url, &format!("tessera_bench_push_{}", std::process::id())).await {
            Ok((fresh, db)) => {
                let result = push_on(t, &mode, Some(&fresh), scratch, logs, report, started).await;
                pg_drop(url, &db).await;
                if let Err(e) = result {
                    failures.push(format!("PostgreSQL: {e:#}"));
                }
            }
            Err(reason) => {
                let line = format!("PUSH ON POSTGRESQL NOT RUN: {reason}");
                eprintln!("\n!!!!!!!! {line}\n");
                report.notes.push(line);
            }
        }
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(())
}

/// One backend's run of the push section.
async fn push_on(
    t: &Tessera,
    mode: &push::PushMode,
    database_url: Option<&str>,
    scratch: &Path,
    logs: &Path,
    report: &mut Report,
    started: Instant,
) -> anyhow::Result<()> {
    let (backend, dir) = match database_url {
        None => ("SQLite", scratch.join("push")),
        Some(_) => ("PostgreSQL, two nodes", scratch.join("push-pg")),
    };
    say(started, &format!("push ({backend}): seeding {} devices", stats::fmt_count(mode.devices)));
    let (seed, took) = t.seed_push(&dir, database_url, mode.devices).await?;
    let room = (mode.devices + 1024).to_string();
    let env = [
        ("TESSERA_PUSH_SENDER_PER_MINUTE", "0"),
        ("TESSERA_PUSH_DEVICE_PER_MINUTE", "0"),
        ("TESSERA_HTTP_MAX_CONNECTIONS", room.as_str()),
        ("TESSERA_HTTP_MAX_CONNECTIONS_PER_ADDRESS", room.as_str()),
    ];
    let mut servers = Servers(Vec::new());
    let start = |label: &'static str, log: &'static str| {
        let log = logs.join(log);
        let dir = dir.clone();
        async move { t.start_with_env(label, &dir, database_url, &log, &env).await }
    };
    let (first, _) = start("tessera (push)", "tessera-push.log").await?;
    let nodes = match database_url {
        None => push::Nodes {
            devices: first.addr,
            devices_pid: first.pid,
            sender: first.addr,
            pids: vec![first.pid],
        },
        Some(_) => {
            let second = start("tessera (push, second node)", "tessera-push-2.log").await;
            let (second, _) = match second {
                Ok(second) => second,
                Err(e) => {
                    first.stop().await;
                    return Err(e);
                }
            };
            let nodes = push::Nodes {
                devices: first.addr,
                devices_pid: first.pid,
                sender: second.addr,
                pids: vec![first.pid, second.pid],
            };
            servers.0.push(second);
            nodes
        }
    };
    servers.0.push(first);
    let mut rep = push::PushReport {
        backend: backend.into(),
        devices: mode.devices,
        seed_s: took.as_secs_f64(),
        comparison: push::COMPARISON.into(),
        ..push::PushReport::default()
    };
    let result = push::measure(&nodes, &seed, mode, &mut rep, &|what| {
        say(started, &format!("{backend}: {what}"))
    })
    .await;
    let alive = servers.0.iter_mut().all(Server::alive);
    servers.stop_all().await;
    let _ = std::fs::remove_dir_all(&dir);
    let failed: Vec<String> = [
        ("latency", &rep.latency),
        ("light latency", &rep.latency_light),
        ("throughput", &rep.throughput),
    ]
    .into_iter()
    .filter_map(|(name, phase)| {
        let phase = phase.as_ref()?;
        Some(format!(
            "{name}: {} of {} multicasts failed (first: {})",
            phase.failed_requests,
            phase.multicasts,
            phase.first_error.as_deref()?
        ))
    })
    .collect();
    report.push.push(rep);
    result?;
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    if !alive {
        bail!("a server died during the push section (see logs/tessera-push*.log)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Options> {
        Options::parse(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn the_recorded_command_leaves_out_where_the_report_went() {
        let args = |words: &[&str]| words.iter().map(|it| (*it).to_owned()).collect::<Vec<_>>();
        assert_eq!(recorded_command(&args(&[])), "cargo xtask bench");
        assert_eq!(
            recorded_command(&args(&["--out", "elsewhere", "--only", "push", "--out=x"])),
            "cargo xtask bench --only push"
        );
    }

    #[test]
    fn options() -> anyhow::Result<()> {
        let o = parse(&["--quick", "--only", "discovery,crypto", "--out=x", "--concurrency", "8"])?;
        assert!(o.quick && !o.complete());
        assert!(o.wants("discovery") && o.wants("crypto") && !o.wants("growth"));
        assert_eq!((o.out, o.concurrency), (Some(PathBuf::from("x")), 8));
        let all = parse(&[])?;
        assert!(all.wants("growth") && all.complete() && all.concurrency == 32);
        assert!(parse(&["--only", "nope"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--out"]).is_err());
        assert!(parse(&["--concurrency", "0"]).is_err());
        assert!(parse(&["--no-postgres"])?.no_postgres && !all.no_postgres);
        assert!(parse(&["--only", "refresh,statements"])?.wants("statements"));
        let push = parse(&["--only", "push"])?;
        assert!(push.wants("push") && !push.wants("growth") && !push.complete());
        Ok(())
    }

    #[test]
    fn database_urls() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/db?sslmode=disable", "x").as_deref(),
            Some("postgres://u:p@h:5432/x?sslmode=disable")
        );
        assert_eq!(with_database("postgres://h/db", "x").as_deref(), Some("postgres://h/x"));
        assert_eq!(with_database("postgres://h", "x").as_deref(), Some("postgres://h/x"));
        assert_eq!(with_database("postgres://h?a=b", "x").as_deref(), Some("postgres://h/x?a=b"));
        assert_eq!(with_database("nonsense", "x"), None);
    }
}
