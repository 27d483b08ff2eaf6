//! The report: its data (written as JSON as is), the targets, and the Markdown rendering.

use std::fmt::Write as _;

use serde::Serialize;

use super::load::LoadResult;
use super::statements::{self, StatementCount};
use super::stats::{self, fmt_bytes, fmt_count, fmt_pct, fmt_rate, fmt_ratio, fmt_us};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum System {
    Tessera,
    TesseraPg,
    TesseraPg2,
    Peer,
    Peer2,
    Ceiling,
}

impl System {
    pub(crate) fn label(self) -> &'static str {
        match self {
            System::Tessera => "tessera (SQLite)",
            System::TesseraPg => "tessera (PostgreSQL)",
            System::TesseraPg2 => "tessera ×2 (PostgreSQL)",
            System::Peer => "peer",
            System::Peer2 => "peer ×2",
            System::Ceiling => "ceiling",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct SystemResult {
    pub(crate) system: System,
    pub(crate) result: Option<LoadResult>,
    pub(crate) error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(crate) enum Outcome {
    Ran,
    Skipped { reason: String },
    Failed { reason: String },
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Canary {
    /// RSA-2048 signatures per second, all cores, before and after the scenario.
    pub(crate) before: f64,
    pub(crate) after: f64,
    pub(crate) drift: Option<f64>,
    pub(crate) flagged: bool,
}

impl Canary {
    pub(crate) fn new(before: f64, after: f64) -> Self {
        Canary {
            before,
            after,
            drift: stats::drift(before, after),
            flagged: stats::canary_flagged(before, after),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct ScenarioReport {
    pub(crate) name: String,
    pub(crate) title: String,
    pub(crate) note: String,
    pub(crate) outcome: Outcome,
    pub(crate) results: Vec<SystemResult>,
    /// The name of its ceiling (a `ceiling_*` entry), run in turns with it.
    pub(crate) ceiling: Option<String>,
    pub(crate) canary: Option<Canary>,
}

impl ScenarioReport {
    pub(crate) fn new(name: &str, title: &str, note: &str) -> Self {
        ScenarioReport {
            name: name.into(),
            title: title.into(),
            note: note.into(),
            outcome: Outcome::Ran,
            results: Vec::new(),
            ceiling: None,
            canary: None,
        }
    }

    pub(crate) fn get(&self, system: System) -> Option<&LoadResult> {
        self.results.iter().find(|r| r.system == system).and_then(|r| r.result.as_ref())
    }

    pub(crate) fn rps(&self, system: System) -> Option<f64> {
        self.get(system).map(|r| r.rps)
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Machine {
    pub(crate) cpu_model: String,
    pub(crate) cores: usize,
    pub(crate) memory_bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Settings {
    pub(crate) concurrency: usize,
    pub(crate) password_concurrency: usize,
    pub(crate) growth_concurrency: usize,
    pub(crate) warmup_ms: u64,
    pub(crate) runs: usize,
    pub(crate) run_ms: u64,
    pub(crate) max_requests_per_run: u64,
    pub(crate) loadgen_threads: usize,
    pub(crate) canary_ms: u64,
    pub(crate) crypto_ms: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Sessions100k {
    pub(crate) sessions: u64,
    pub(crate) seed_s: f64,
    pub(crate) idle_rss_bytes: Option<u64>,
    pub(crate) rss_after_validation_bytes: Option<u64>,
    pub(crate) db_bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Resources {
    pub(crate) tessera_idle_rss_bytes: Option<u64>,
    pub(crate) peer_idle_rss_bytes: Option<u64>,
    pub(crate) ceiling_idle_rss_bytes: Option<u64>,
    /// Start-to-ready on an existing (seeded) SQLite data dir, each start.
    pub(crate) ready_restart_ms: Vec<f64>,
    pub(crate) ready_restart_median_ms: Option<f64>,
    /// Start-to-ready on a fresh, empty data dir (schema, keys), each start.
    pub(crate) ready_fresh_ms: Vec<f64>,
    pub(crate) ready_fresh_median_ms: Option<f64>,
    pub(crate) sessions: Option<Sessions100k>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct GrowthStep {
    pub(crate) credentials: u64,
    pub(crate) seed_s: f64,
    pub(crate) db_bytes: u64,
    pub(crate) rps: f64,
    pub(crate) p50_us: u32,
    pub(crate) p99_us: u32,
    pub(crate) errors: u64,
    pub(crate) peak_rss_bytes: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TargetStatus {
    Met,
    Missed,
    NotMeasured,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct TargetRow {
    pub(crate) target: String,
    pub(crate) measured: String,
    pub(crate) status: TargetStatus,
}

#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct CryptoOp {
    pub(crate) name: String,
    /// All threads together.
    pub(crate) ops_per_sec: f64,
    /// The measuring threads' own CPU time per operation.
    pub(crate) cpu_us_per_op: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Report {
    pub(crate) date: String,
    pub(crate) command: String,
    pub(crate) quick: bool,
    pub(crate) machine: Machine,
    /// (what, version), in order.
    pub(crate) versions: Vec<(String, String)>,
    pub(crate) settings: Settings,
    pub(crate) duration_s: f64,
    pub(crate) canary_baseline: Option<f64>,
    pub(crate) ceilings: Vec<ScenarioReport>,
    /// Raw operations, one thread per core.
    pub(crate) crypto: Vec<CryptoOp>,
    pub(crate) scenarios: Vec<ScenarioReport>,
    pub(crate) resources: Resources,
    pub(crate) growth: Vec<GrowthStep>,
    /// SQL statements per measured request, by scenario and backend.
    pub(crate) statements: Vec<StatementCount>,
    /// The `push` section, when it ran.
    pub(crate) push: Vec<super::push::PushReport>,
    pub(crate) targets: Vec<TargetRow>,
    /// Loud lines: something the reader must know (a part that could not run).
    pub(crate) notes: Vec<String>,
    /// What went wrong; a non-empty list makes the command fail.
    pub(crate) failures: Vec<String>,
}

/// The most a p99 may grow from the smallest to the largest credential count and still be "flat".
pub(crate) const FLAT_P99: f64 = 1.5;
pub(crate) const IDLE_RSS_GOAL: u64 = 20 * 1024 * 1024;
pub(crate) const READY_GOAL_MS: f64 = 100.0;
/// The latency check: a tessera endpoint whose p50 exceeds this at [`SLOW_CONNECTIONS`]
/// connections is queueing behind something (a lock, a write on a read path, a small pool).
pub(crate) const SLOW_P50_US: u32 = 20_000;
pub(crate) const SLOW_CONNECTIONS: usize = 32;

/// One tessera run the latency check flags.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SlowRun {
    pub(crate) scenario: String,
    pub(crate) system: System,
    pub(crate) p50_us: u32,
    pub(crate) rps: f64,
}

impl Report {
    pub(crate) fn scenario(&self, name: &str) -> Option<&ScenarioReport> {
        self.scenarios.iter().chain(&self.ceilings).find(|s| s.name == name)
    }

    /// The throughput a scenario's ceiling allows: its run among the scenario's own (in turns
    /// with tessera), else the ceiling's own section.
    pub(crate) fn ceiling_rate(&self, s: &ScenarioReport) -> Option<f64> {
        s.rps(System::Ceiling)
            .or_else(|| self.scenario(s.ceiling.as_deref()?)?.rps(System::Ceiling))
    }

    /// tessera's efficiency against its ceiling by CPU time: the ceiling server's CPU per
    /// request over tessera's (1.0 = tessera spends no more than the ceiling).
    pub(crate) fn ceiling_cpu_fraction(&self, s: &ScenarioReport) -> Option<f64> {
        let ceiling = s
            .get(System::Ceiling)
            .or_else(|| self.scenario(s.ceiling.as_deref()?)?.get(System::Ceiling))?;
        stats::ratio(ceiling.cpu_us_per_req?, s.get(System::Tessera)?.cpu_us_per_req?)
    }

    /// tessera's runs at [`SLOW_CONNECTIONS`] connections (how many there were) and those whose
    /// p50 exceeds [`SLOW_P50_US`].
    pub(crate) fn slow_runs(&self) -> (usize, Vec<SlowRun>) {
        let mut checked = 0;
        let mut slow = Vec::new();
        for s in &self.scenarios {
            for r in &s.results {
                let tessera =
                    matches!(r.system, System::Tessera | System::TesseraPg | System::TesseraPg2);
                let Some(l) = r.result.as_ref().filter(|l| l.concurrency == SLOW_CONNECTIONS)
                else {
                    continue;
                };
                if !tessera {
                    continue;
                }
                checked += 1;
                if l.p50_us > SLOW_P50_US {
                    slow.push(SlowRun {
                        scenario: s.name.clone(),
                        system: r.system,
                        p50_us: l.p50_us,
                        rps: l.rps,
                    });
                }
            }
        }
        (checked, slow)
    }

    /// Fills `targets` from the measurements.
    pub(crate) fn evaluate_targets(&mut self) {
        let mut rows = Vec::new();
        let ratio_row =
            |rows: &mut Vec<TargetRow>, scenario: &str, of: System, goal: f64, what: &str| {
                let s = self.scenario(scenario);
                let r = s.and_then(|s| stats::ratio(s.rps(System::Tessera)?, s.rps(of)?));
                let flag = if canary_moved(s) { " (canary moved)" } else { "" };
                rows.push(row(
                    format!("{scenario} ≥ {goal}× {what}"),
                    r.map(|r| (r >= goal, format!("{}{flag}", fmt_ratio(Some(r))))),
                    s,
                ));
            };
        ratio_row(&mut rows, "client_credentials", System::Peer, 5.0, "one peer process");
        ratio_row(
            &mut rows,
            "client_credentials",
            System::Peer2,
            4.0,
            "the 2-process peer cluster",
        );
        ratio_row(&mut rows, "introspection", System::Peer, 6.0, "the peer");
        ratio_row(&mut rows, "tokeninfo", System::Peer, 6.0, "the peer's introspection");
        ratio_row(&mut rows, "refresh", System::Peer, 3.0, "the peer");
        ratio_row(&mut rows, "code_exchange", System::Peer, 2.0, "the peer");
        let s = self.scenario("refresh");
        let raw = self.crypto.iter().find(|c| c.name == RS256_SIGN).map(|c| c.ops_per_sec);
        let r = s.and_then(|s| stats::ratio(s.rps(System::Tessera)?, raw?));
        let flag = if canary_moved(s) { " (canary moved)" } else { "" };
        rows.push(row(
            format!("refresh ≥ {:.0}% of the raw RS256 signing rate", REFRESH_OF_RS256 * 100.0),
            r.zip(raw).map(|(r, raw)| {
                (
                    r >= REFRESH_OF_RS256,
                    format!("{} of {}/s{flag}", fmt_pct(Some(r)), fmt_rate(raw)),
                )
            }),
            s,
        ));
        for (scenario, goal, what) in [
            ("client_credentials", 0.8, "the token-mint ceiling"),
            ("signin", 0.9, "the Argon2id limit"),
            ("session", 0.5, "the hello ceiling"),
        ] {
            let s = self.scenario(scenario);
            let r = s.and_then(|s| stats::ratio(s.rps(System::Tessera)?, self.ceiling_rate(s)?));
            let by_cpu = s.and_then(|s| self.ceiling_cpu_fraction(s));
            let by_cpu =
                by_cpu.map_or(String::new(), |f| format!(" (by CPU time: {})", fmt_pct(Some(f))));
            let flag = if canary_moved(s) { " (canary moved)" } else { "" };
            rows.push(row(
                format!("{scenario} ≥ {:.0}% of {what}", goal * 100.0),
                r.map(|r| (r >= goal, format!("{}{by_cpu}{flag}", fmt_pct(Some(r))))),
                s,
            ));
        }
        let res = &self.resources;
        rows.push(TargetRow {
            target: format!("idle RSS ≤ {}", fmt_bytes(IDLE_RSS_GOAL)),
            measured: res.tessera_idle_rss_bytes.map_or("not measured".into(), fmt_bytes),
            status: status(res.tessera_idle_rss_bytes.map(|b| b <= IDLE_RSS_GOAL)),
        });
        rows.push(TargetRow {
            target: format!(
                "ready ≤ {READY_GOAL_MS:.0} ms (median of {} restarts)",
                res.ready_restart_ms.len().max(5)
            ),
            measured: res
                .ready_restart_median_ms
                .map_or("not measured".into(), |ms| format!("{ms:.1} ms")),
            status: status(res.ready_restart_median_ms.map(|ms| ms <= READY_GOAL_MS)),
        });
        let (first, last) = (self.growth.first(), self.growth.last());
        let flat = match (first, last) {
            (Some(a), Some(b)) if a.credentials < b.credentials => {
                stats::ratio(f64::from(b.p99_us), f64::from(a.p99_us)).map(|r| (a, b, r))
            }
            _ => None,
        };
        rows.push(TargetRow {
            target: format!("flat session p99 across credential counts (≤ {FLAT_P99}× growth)"),
            measured: flat.map_or("not measured".into(), |(a, b, r)| {
                format!(
                    "{} → {}: {} → {} ({})",
                    fmt_count(a.credentials),
                    fmt_count(b.credentials),
                    fmt_us(u64::from(a.p99_us)),
                    fmt_us(u64::from(b.p99_us)),
                    fmt_ratio(Some(r))
                )
            }),
            status: status(flat.map(|(_, _, r)| r <= FLAT_P99)),
        });
        self.postgres_targets(&mut rows);
        for p in &self.push {
            push_targets(&mut rows, p);
        }
        self.targets = rows;
    }

    /// The PostgreSQL targets, over every scenario that ran on both sides of the comparison:
    /// one node at least half of SQLite's throughput; two nodes on one database no slower than
    /// one, at a server CPU per request within 10% of one node's.
    fn postgres_targets(&self, rows: &mut Vec<TargetRow>) {
        let rps = |a: System, b: System| -> Vec<(&str, f64)> {
            let of = |s: &ScenarioReport| stats::ratio(s.rps(a)?, s.rps(b)?);
            self.scenarios.iter().filter_map(|s| Some((s.name.as_str(), of(s)?))).collect()
        };
        let cpu = |s: &ScenarioReport| {
            let per = |sys: System| s.get(sys).and_then(|l| l.cpu_us_per_req);
            stats::ratio(per(System::TesseraPg2)?, per(System::TesseraPg)?)
        };
        let cpu: Vec<(&str, f64)> =
            self.scenarios.iter().filter_map(|s| Some((s.name.as_str(), cpu(s)?))).collect();
        for (target, ratios, holds) in [
            (
                format!(
                    "PostgreSQL, one node: ≥ {:.0}% of SQLite's throughput on every endpoint",
                    PG_OF_SQLITE * 100.0
                ),
                rps(System::TesseraPg, System::Tessera),
                (|r| r >= PG_OF_SQLITE) as fn(f64) -> bool,
            ),
            (
                "PostgreSQL, two nodes: no slower than one on every endpoint".to_owned(),
                rps(System::TesseraPg2, System::TesseraPg),
                |r| r >= 1.0,
            ),
            (
                format!(
                    "PostgreSQL, two nodes: server CPU per request ≤ {:.0}% of one node's on \
                     every endpoint",
                    PG2_CPU_OF_PG * 100.0
                ),
                cpu,
                |r| r <= PG2_CPU_OF_PG,
            ),
        ] {
            rows.push(every_endpoint(target, &ratios, holds));
        }
    }
}

/// The share the refresh scenario's throughput is held to, of the raw RS256 signing rate (each
/// refresh signs one ID token).
const REFRESH_OF_RS256: f64 = 0.8;
/// PostgreSQL on one node, of SQLite's throughput.
const PG_OF_SQLITE: f64 = 0.5;
/// Two PostgreSQL nodes' server CPU per request, of one node's.
const PG2_CPU_OF_PG: f64 = 1.1;
/// The crypto table's RS256 signing row.
pub(crate) const RS256_SIGN: &str = "rs256_sign";

/// A target that must hold on every endpoint: met when `holds` is true of every ratio; the
/// measured text names the endpoints where it does not, or the ratio furthest from failing it.
fn every_endpoint(target: String, ratios: &[(&str, f64)], holds: fn(f64) -> bool) -> TargetRow {
    if ratios.is_empty() {
        return TargetRow {
            target,
            measured: "not measured (no PostgreSQL runs)".to_owned(),
            status: TargetStatus::NotMeasured,
        };
    }
    let failing: Vec<String> = ratios
        .iter()
        .filter(|(_, r)| !holds(*r))
        .map(|(name, r)| format!("{name} {}", fmt_pct(Some(*r))))
        .collect();
    let measured = if failing.is_empty() {
        // Ratios that must stay at least a share: the lowest; at most a share: the highest.
        let closest = if holds(0.0) {
            ratios.iter().max_by(|a, b| a.1.total_cmp(&b.1))
        } else {
            ratios.iter().min_by(|a, b| a.1.total_cmp(&b.1))
        };
        closest.map_or(String::new(), |(name, r)| {
            format!("all {} endpoints; closest: {name} {}", ratios.len(), fmt_pct(Some(*r)))
        })
    } else {
        format!("{} of {} endpoints: {}", failing.len(), ratios.len(), failing.join(", "))
    };
    TargetRow { target, measured, status: status(Some(failing.is_empty())) }
}

/// The push section's three targets (issue 15).
fn push_targets(rows: &mut Vec<TargetRow>, p: &super::push::PushReport) {
    use super::push::{BYTES_PER_DEVICE_GOAL, DELIVERED_PER_SEC_GOAL, P99_GOAL_US, PACED_RATE};
    let missing = "not measured (see the failures)".to_owned();
    rows.push(TargetRow {
        target: format!(
            "push ({}): server memory per connected device ≤ {} ({} devices)",
            p.backend,
            fmt_bytes(BYTES_PER_DEVICE_GOAL as u64),
            fmt_count(p.devices)
        ),
        measured: p.bytes_per_device.map_or(missing.clone(), |b| fmt_bytes(b as u64)),
        status: status(p.bytes_per_device.map(|b| b <= BYTES_PER_DEVICE_GOAL)),
    });
    let t = p.throughput.as_ref().filter(|t| t.multicasts > 0);
    rows.push(TargetRow {
        target: format!(
            "push ({}): send→deliver ≥ {} messages/s",
            p.backend,
            fmt_rate(DELIVERED_PER_SEC_GOAL)
        ),
        measured: t.map_or(missing.clone(), |t| {
            format!(
                "{}/s ({} of recipients accepted)",
                fmt_rate(t.delivered_per_sec),
                fmt_pct(t.accepted_share())
            )
        }),
        status: status(t.map(|t| t.delivered_per_sec >= DELIVERED_PER_SEC_GOAL)),
    });
    let l = p.latency.as_ref().and_then(|l| Some((l, l.p99_us?)));
    rows.push(TargetRow {
        target: format!(
            "push ({}): p99 send→deliver ≤ {} at {} messages/s",
            p.backend,
            fmt_us(u64::from(P99_GOAL_US)),
            fmt_count(PACED_RATE)
        ),
        measured: l.map_or(missing, |(l, p99)| {
            format!(
                "{} (p50 {}, {}/s sent)",
                fmt_us(u64::from(p99)),
                l.p50_us.map_or("?".into(), |us| fmt_us(u64::from(us))),
                fmt_rate(l.recipients as f64 / l.duration_s.max(1e-9))
            )
        }),
        status: status(l.map(|(_, p99)| p99 <= P99_GOAL_US)),
    });
}

pub(crate) const ARGON2: &str = "argon2id_m19456_t2_p1";
/// The in-process `IdTokenVerifier` row of the crypto table.
pub(crate) const ID_TOKEN_VERIFIER: &str = "idtokenverifier_rs256";

fn canary_moved(s: Option<&ScenarioReport>) -> bool {
    s.and_then(|s| s.canary.as_ref()).is_some_and(|c| c.flagged)
}

fn status(met: Option<bool>) -> TargetStatus {
    match met {
        Some(true) => TargetStatus::Met,
        Some(false) => TargetStatus::Missed,
        None => TargetStatus::NotMeasured,
    }
}

fn row(target: String, measured: Option<(bool, String)>, s: Option<&ScenarioReport>) -> TargetRow {
    match measured {
        Some((met, text)) => TargetRow { target, measured: text, status: status(Some(met)) },
        None => {
            let why = match s.map(|s| &s.outcome) {
                None => "not run".to_owned(),
                Some(Outcome::Skipped { reason } | Outcome::Failed { reason }) => reason.clone(),
                Some(Outcome::Ran) => "a side of the comparison is missing".to_owned(),
            };
            TargetRow {
                target,
                measured: format!("not measured: {why}"),
                status: TargetStatus::NotMeasured,
            }
        }
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn render_push(w: &mut String, p: &super::push::PushReport) {
    use super::push::{FLOOD_IDS, LIGHT_IDS, PACED_EVERY, PACED_IDS, SENDERS};
    let bytes = |b: Option<u64>| b.map_or("not measured".into(), fmt_bytes);
    let _ = writeln!(
        w,
        "\n## Push delivery ({}, WebSocket)\n\n\
         - {} devices seeded in {:.1} s; {} connected in {:.1} s\n\
         - Server RSS: {} before the connections, {} with them: {} per connected device\n\
         - With half of them open: {}; the second half's {} per device (what each further \
         device costs, without what the first connections spend once)",
        p.backend,
        fmt_count(p.devices),
        p.seed_s,
        fmt_count(p.connected),
        p.connect_s,
        bytes(p.rss_before_bytes),
        bytes(p.rss_connected_bytes),
        p.bytes_per_device.map_or("not measured".into(), |b| fmt_bytes(b as u64)),
        bytes(p.rss_half_bytes),
        p.bytes_per_further_device.map_or("not measured".into(), |b| fmt_bytes(b as u64)),
    );
    let _ = writeln!(
        w,
        "\n| phase | sent for | multicasts | recipients | accepted | failed requests | delivered (in window / in all) | delivered/s | p50 | p99 | max | server CPU per message | load generator CPU per message |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let us = |v: Option<u32>| v.map_or("-".into(), |v| fmt_us(u64::from(v)));
    let cpu = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} µs"));
    let phases = [
        (format!("latency: {PACED_IDS} ids every {} ms", PACED_EVERY.as_millis()), &p.latency),
        (
            format!("latency: {LIGHT_IDS} ids every {} ms", PACED_EVERY.as_millis()),
            &p.latency_light,
        ),
        (format!("throughput: {SENDERS} senders, {FLOOD_IDS} ids a multicast"), &p.throughput),
    ];
    for (name, phase) in phases {
        let Some(ph) = phase else { continue };
        let _ = writeln!(
            w,
            "| {name} | {:.1} s | {} | {} | {} ({}) | {} | {} / {} | {}/s | {} | {} | {} | {} | {} |",
            ph.duration_s,
            fmt_count(ph.multicasts),
            fmt_count(ph.recipients),
            fmt_count(ph.accepted),
            fmt_pct(ph.accepted_share()),
            ph.failed_requests,
            fmt_count(ph.delivered_in_window),
            fmt_count(ph.delivered),
            fmt_rate(ph.delivered_per_sec),
            us(ph.p50_us),
            us(ph.p99_us),
            us(ph.max_us),
            cpu(ph.server_cpu_us_per_message),
            cpu(ph.loadgen_cpu_us_per_message),
        );
    }
    if p.dropped_connections > 0 {
        let _ = writeln!(w, "\n- **{} device connections closed early**", p.dropped_connections);
    }
    let _ = writeln!(w, "\n{}", p.comparison);
}

/// The report as Markdown.
pub(crate) fn render_markdown(r: &Report) -> String {
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# tessera benchmark report{}\n", if r.quick { " (quick)" } else { "" });
    let _ = writeln!(w, "- Date: {}", r.date);
    let _ = writeln!(w, "- Command: `{}`", r.command);
    let _ = writeln!(
        w,
        "- Machine: {}, {} cores, {} memory",
        r.machine.cpu_model,
        r.machine.cores,
        fmt_bytes(r.machine.memory_bytes)
    );
    let versions: Vec<String> = r
        .versions
        .iter()
        .map(|(k, v)| if v.starts_with(k.as_str()) { v.clone() } else { format!("{k} {v}") })
        .collect();
    let _ = writeln!(w, "- Versions: {}", versions.join("; "));
    let s = &r.settings;
    let _ = writeln!(
        w,
        "- Load: {} connections ({} for password scenarios), warm-up {} ms, median of {} runs × {} ms \
         (≤ {} requests a run), {} load-generator thread(s), all over 127.0.0.1",
        s.concurrency,
        s.password_concurrency,
        s.warmup_ms,
        s.runs,
        s.run_ms,
        fmt_count(s.max_requests_per_run),
        s.loadgen_threads
    );
    let _ = writeln!(w, "- Duration of the run: {:.0} s", r.duration_s);
    if let Some(c) = r.canary_baseline {
        let _ = writeln!(
            w,
            "- CPU canary at the start: {} RSA-2048 signatures/s (all cores)",
            fmt_rate(c)
        );
    }
    let _ = writeln!(w);
    for n in &r.notes {
        let _ = writeln!(w, "> **{}**\n", cell(n));
    }
    for f in &r.failures {
        let _ = writeln!(w, "> **FAILED:** {}\n", cell(f));
    }

    let _ = writeln!(w, "## Targets\n\n| target | measured | status |\n|---|---|---|");
    for t in &r.targets {
        let st = match t.status {
            TargetStatus::Met => "met",
            TargetStatus::Missed => "**missed**",
            TargetStatus::NotMeasured => "not measured",
        };
        let _ = writeln!(w, "| {} | {} | {st} |", cell(&t.target), cell(&t.measured));
    }

    render_latency_check(w, r);

    let ran: Vec<&ScenarioReport> =
        r.scenarios.iter().filter(|s| s.outcome == Outcome::Ran).collect();
    let _ = writeln!(w, "\n## Ratios (same run, interleaved runs)\n");
    if ran.is_empty() {
        let _ = writeln!(w, "No scenario ran.");
    } else {
        let _ = writeln!(
            w,
            "Throughput ratios, and by CPU time (the other side's server CPU per request over \
             tessera's: hardly moved by other load on the machine).\n\n\
             | scenario | tessera req/s | peer req/s | tessera ÷ peer | by CPU | peer ×2 req/s | tessera ÷ peer ×2 | ceiling | of ceiling | by CPU |\n\
             |---|---:|---:|---:|---:|---:|---:|---|---:|---:|"
        );
        for s in &ran {
            let t = s.rps(System::Tessera);
            let rate = |x: Option<f64>| x.map_or("–".into(), fmt_rate);
            let ceiling = r.ceiling_rate(s);
            let cpu = |sys: System| s.get(sys).and_then(|l| l.cpu_us_per_req);
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.name,
                rate(t),
                rate(s.rps(System::Peer)),
                fmt_ratio(t.zip(s.rps(System::Peer)).and_then(|(a, b)| stats::ratio(a, b))),
                fmt_ratio(
                    cpu(System::Peer)
                        .zip(cpu(System::Tessera))
                        .and_then(|(a, b)| stats::ratio(a, b))
                ),
                rate(s.rps(System::Peer2)),
                fmt_ratio(t.zip(s.rps(System::Peer2)).and_then(|(a, b)| stats::ratio(a, b))),
                match (&s.ceiling, ceiling) {
                    (Some(name), Some(c)) => format!("{name}: {}/s", fmt_rate(c)),
                    (Some(name), None) => format!("{name}: –"),
                    _ => "–".into(),
                },
                fmt_pct(t.zip(ceiling).and_then(|(a, b)| stats::ratio(a, b))),
                fmt_pct(r.ceiling_cpu_fraction(s)),
            );
        }
    }

    let _ = writeln!(w, "\n## Throughput and latency\n");
    let _ = writeln!(
        w,
        "| scenario | system | req/s | p50 | p99 | errors | server CPU/req | peak RSS | canary drift |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for s in r.ceilings.iter().chain(&r.scenarios).filter(|s| !s.results.is_empty()) {
        let canary = s.canary.as_ref().map_or("–".into(), |c| {
            let d = c.drift.map_or("?".into(), |d| format!("{:+.0}%", d * 100.0));
            if c.flagged { format!("**{d} (flagged)**") } else { d }
        });
        for res in &s.results {
            match (&res.result, &res.error) {
                (Some(l), _) => {
                    let _ = writeln!(
                        w,
                        "| {} | {} | {} | {} | {} | {} | {} | {} | {canary} |",
                        s.name,
                        res.system.label(),
                        fmt_rate(l.rps),
                        fmt_us(u64::from(l.p50_us)),
                        fmt_us(u64::from(l.p99_us)),
                        l.errors,
                        l.cpu_us_per_req.map_or("–".into(), |c| fmt_us(c.round() as u64)),
                        l.peak_rss_bytes.map_or("–".into(), fmt_bytes),
                    );
                }
                (None, e) => {
                    let _ = writeln!(
                        w,
                        "| {} | {} | failed: {} | | | | | | {canary} |",
                        s.name,
                        res.system.label(),
                        cell(e.as_deref().unwrap_or("?"))
                    );
                }
            }
        }
    }
    let with_errors: Vec<&LoadResult> = r
        .ceilings
        .iter()
        .chain(&r.scenarios)
        .flat_map(|s| s.results.iter().filter_map(|x| x.result.as_ref()))
        .filter(|l| l.errors > 0)
        .collect();
    for l in with_errors {
        let _ = writeln!(
            w,
            "\n- {}: {} errors, e.g. {}",
            l.label,
            l.errors,
            cell(&l.error_samples.join(" / "))
        );
    }

    if !r.crypto.is_empty() {
        let _ = writeln!(
            w,
            "\n## Raw crypto (aws-lc-rs, argon2 0.6; one thread per core)\n\n\
             | operation | ops/s | CPU per op |\n|---|---:|---:|"
        );
        for c in &r.crypto {
            let cpu = c.cpu_us_per_op.map_or("–".into(), |us| fmt_us(us.round() as u64));
            let _ = writeln!(w, "| {} | {} | {cpu} |", c.name, fmt_rate(c.ops_per_sec));
        }
        let rate = |name: &str| r.crypto.iter().find(|c| c.name == name).map(|c| c.ops_per_sec);
        if let (Some(verifier), Some(raw)) = (rate(ID_TOKEN_VERIFIER), rate("rs256_verify")) {
            let _ = writeln!(
                w,
                "
`{ID_TOKEN_VERIFIER}`: tessera-client's `IdTokenVerifier` checking one of tessera's RS256 \
                 ID tokens in process (signature, issuer, audience, expiry; keys cached), one task per core: \
                 {:.0}% of the raw RS256 verify rate.",
                verifier / raw * 100.0
            );
        }
        if let Some(line) = rsa_sha1_comparison(r) {
            let _ = writeln!(w, "\n{line}");
        }
    }

    let res = &r.resources;
    let _ = writeln!(w, "\n## Resources\n");
    let bytes = |b: Option<u64>| b.map_or("not measured".into(), fmt_bytes);
    let _ = writeln!(
        w,
        "- Idle RSS after ready: tessera {}, peer {}, ceiling {}",
        bytes(res.tessera_idle_rss_bytes),
        bytes(res.peer_idle_rss_bytes),
        bytes(res.ceiling_idle_rss_bytes)
    );
    let ready = |median: Option<f64>, each: &[f64]| match median {
        Some(m) => format!(
            "{m:.1} ms (median of {}: {} ms)",
            each.len(),
            each.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(", ")
        ),
        None => "not measured".into(),
    };
    let _ = writeln!(
        w,
        "- Start to ready (SQLite): existing data dir {}; fresh data dir {}",
        ready(res.ready_restart_median_ms, &res.ready_restart_ms),
        ready(res.ready_fresh_median_ms, &res.ready_fresh_ms),
    );
    if let Some(s) = &res.sessions {
        let _ = writeln!(
            w,
            "- With {} live sessions (seeded in {:.1} s, data dir {}): RSS {} idle, {} after validating 1000 of them",
            fmt_count(s.sessions),
            s.seed_s,
            fmt_bytes(s.db_bytes),
            bytes(s.idle_rss_bytes),
            bytes(s.rss_after_validation_bytes)
        );
    }

    if !r.growth.is_empty() {
        let _ = writeln!(
            w,
            "\n## Cost growth: session-cookie validation vs stored credentials\n\n\
             | credentials | req/s | p50 | p99 | errors | seed time | data dir | per million credentials | peak RSS |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for g in &r.growth {
            let per_million = per_million(&r.growth, g);
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {:.1} s | {} | {} | {} |",
                fmt_count(g.credentials),
                fmt_rate(g.rps),
                fmt_us(u64::from(g.p50_us)),
                fmt_us(u64::from(g.p99_us)),
                g.errors,
                g.seed_s,
                fmt_bytes(g.db_bytes),
                fmt_bytes(per_million as u64),
                bytes(g.peak_rss_bytes),
            );
        }
    }

    render_statements(w, r);
    for p in &r.push {
        render_push(w, p);
    }

    let skipped: Vec<&ScenarioReport> =
        r.scenarios.iter().filter(|s| s.outcome != Outcome::Ran).collect();
    if !skipped.is_empty() {
        let _ = writeln!(w, "\n## Skipped and failed scenarios\n");
        for s in skipped {
            match &s.outcome {
                Outcome::Skipped { reason } => {
                    let _ = writeln!(w, "- `{}` ({}): skipped: {}", s.name, s.title, cell(reason));
                }
                Outcome::Failed { reason } => {
                    let _ =
                        writeln!(w, "- `{}` ({}): **FAILED**: {}", s.name, s.title, cell(reason));
                }
                Outcome::Ran => {}
            }
        }
    }
    let notes: Vec<&ScenarioReport> =
        r.scenarios.iter().filter(|s| s.outcome == Outcome::Ran && !s.note.is_empty()).collect();
    if !notes.is_empty() {
        let _ = writeln!(w, "\n## Notes on scenarios\n");
        for s in notes {
            let _ = writeln!(w, "- `{}`: {}", s.name, s.note);
        }
    }
    md
}

/// The latency check: every tessera endpoint whose p50 exceeds the limit at 32 connections.
fn render_latency_check(w: &mut String, r: &Report) {
    let (checked, slow) = r.slow_runs();
    let _ = writeln!(
        w,
        "\n## Latency check (tessera p50 ≤ {} at {SLOW_CONNECTIONS} connections)\n",
        fmt_us(u64::from(SLOW_P50_US))
    );
    if checked == 0 {
        let _ = writeln!(w, "Not measured: no tessera run at {SLOW_CONNECTIONS} connections.");
    } else if slow.is_empty() {
        let _ =
            writeln!(w, "All {checked} tessera runs at {SLOW_CONNECTIONS} connections are within.");
    } else {
        let _ = writeln!(
            w,
            "**{} of {checked} tessera runs at {SLOW_CONNECTIONS} connections exceed it** \
             (requests queue behind something: row locks, a write on a read path, a small pool):\n\n\
             | scenario | system | p50 | req/s |\n|---|---|---:|---:|",
            slow.len()
        );
        for s in &slow {
            let _ = writeln!(
                w,
                "| {} | {} | **{}** | {} |",
                s.scenario,
                s.system.label(),
                fmt_us(u64::from(s.p50_us)),
                fmt_rate(s.rps)
            );
        }
    }
}

/// SQL statements per measured request, one row per scenario, one column per backend.
fn render_statements(w: &mut String, r: &Report) {
    if r.statements.is_empty() {
        return;
    }
    let backends: Vec<&str> = ["SQLite", "PostgreSQL"]
        .into_iter()
        .filter(|b| r.statements.iter().any(|c| c.backend == *b))
        .collect();
    let _ = writeln!(
        w,
        "\n## SQL statements per request\n\n\
         Counted from the store's statement log (`TESSERA_LOG={}`) of a separate tessera process on \
         the same database: {} measured requests per scenario, one connection, after the \
         scenario's setup and `pre` requests; median (range if they differ). Statements that read \
         or write rows; transaction control is not counted. The statements listed are the last \
         request's on {}.\n",
        statements::LOG_FILTER,
        statements::ITERATIONS,
        backends.last().copied().unwrap_or("–"),
    );
    let header: Vec<String> = backends.iter().map(|b| format!("{b} statements")).collect();
    let _ = writeln!(
        w,
        "| scenario | {} | writes | statements |\n|---|{}---:|---|",
        header.join(" | "),
        "---:|".repeat(backends.len())
    );
    let mut names: Vec<&str> = Vec::new();
    for c in &r.statements {
        if !names.contains(&c.scenario.as_str()) {
            names.push(&c.scenario);
        }
    }
    for name in names {
        let of = |backend: &str| {
            r.statements.iter().find(|c| c.scenario == name && c.backend == backend)
        };
        let cells: Vec<String> = backends
            .iter()
            .map(|b| match of(b) {
                Some(StatementCount { error: Some(e), .. }) => format!("failed: {}", cell(e)),
                Some(c) => match (c.median(), c.range()) {
                    (Some(m), Some((lo, hi))) if lo != hi => format!("{m} ({lo}–{hi})"),
                    (Some(m), _) => format!("{m}"),
                    _ => "–".into(),
                },
                None => "–".into(),
            })
            .collect();
        let last = backends.last().and_then(|b| of(b)).filter(|c| c.error.is_none());
        let _ = writeln!(
            w,
            "| {name} | {} | {} | {} |",
            cells.join(" | "),
            last.map_or("–".into(), |c| c.writes().to_string()),
            last.map_or("–".into(), |c| cell(&c.last.join("; "))),
        );
    }
}

/// Data-dir bytes per million credentials: the growth from the smallest step when there is one
/// (fixed costs cancel out), else the plain average.
pub(crate) fn per_million(steps: &[GrowthStep], g: &GrowthStep) -> f64 {
    match steps.first() {
        Some(first) if first.credentials < g.credentials => {
            g.db_bytes.saturating_sub(first.db_bytes) as f64 * 1e6
                / (g.credentials - first.credentials) as f64
        }
        _ if g.credentials > 0 => g.db_bytes as f64 * 1e6 / g.credentials as f64,
        _ => 0.0,
    }
}

pub(crate) const BEGIN: &str = "<!-- bench:latest-report:begin -->";
pub(crate) const END: &str = "<!-- bench:latest-report:end -->";

/// `docs` with the part between the markers replaced by `report` (appended, with markers, if absent).
pub(crate) fn splice_docs(docs: &str, report: &str) -> String {
    let report = report.replace("\n# ", "\n### ").replacen(
        "# tessera benchmark report",
        "### Latest report",
        1,
    );
    let report = report.replace("\n## ", "\n#### ");
    let block = format!("{BEGIN}\n\n{}\n{END}", report.trim_end());
    match (docs.find(BEGIN), docs.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{block}{}", &docs[..b], &docs[e + END.len()..]),
        _ => format!("{}\n\n{block}\n", docs.trim_end()),
    }
}

/// The RSA-SHA1 signed calls against the raw verify limit: how much of the server's CPU per call
/// the signature check is, and what rate the server's CPU alone would allow next to that limit.
fn rsa_sha1_comparison(r: &Report) -> Option<String> {
    let raw = r.crypto.iter().find(|c| c.name == "rsa1024_sha1_verify")?;
    let raw_cpu_us = raw.cpu_us_per_op?;
    let scenario = r.scenarios.iter().find(|s| s.name == "oauth1_rsa_caller")?;
    let measured = scenario.get(System::Tessera)?;
    let cpu_us = measured.cpu_us_per_req?;
    let cores = r.machine.cores.max(1) as f64;
    let allowed = cores * 1e6 / cpu_us;
    Some(format!(
        "`oauth1_rsa_caller` (SQLite): {}/s measured, {} of server CPU per call. One raw \
         RSA-SHA1 verify (1024-bit) costs {} ({}/s on all cores), {:.0}% of the call; the server's \
         CPU alone would allow {}/s, {:.0}% of the raw verify limit (the load generator's RSA \
         signing shares the machine).",
        fmt_rate(measured.rps),
        fmt_us(cpu_us.round() as u64),
        fmt_us(raw_cpu_us.round() as u64),
        fmt_rate(raw.ops_per_sec),
        raw_cpu_us / cpu_us * 100.0,
        fmt_rate(allowed),
        allowed / raw.ops_per_sec * 100.0,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::load::RunStats;

    fn load(label: &str, rps: f64, p50: u32, p99: u32) -> LoadResult {
        LoadResult {
            label: label.into(),
            processes: 1,
            concurrency: 32,
            rps,
            p50_us: p50,
            p99_us: p99,
            errors: 0,
            error_samples: Vec::new(),
            cpu_us_per_req: Some(120.0),
            peak_rss_bytes: Some(15 << 20),
            reconnects: 0,
            runs: vec![RunStats {
                requests: 1,
                errors: 0,
                elapsed_s: 1.0,
                rps,
                p50_us: p50,
                p99_us: p99,
                max_us: p99,
                cpu_us_per_req: None,
                peak_rss_bytes: None,
            }],
        }
    }

    fn scenario(name: &str, results: &[(System, f64)], ceiling: Option<&str>) -> ScenarioReport {
        let mut s = ScenarioReport::new(name, name, "");
        s.ceiling = ceiling.map(Into::into);
        s.canary = Some(Canary::new(1000.0, 1010.0));
        s.results = results
            .iter()
            .map(|(sys, rps)| SystemResult {
                system: *sys,
                result: Some(load(sys.label(), *rps, 500, 2000)),
                error: None,
            })
            .collect();
        s
    }

    fn sample() -> Report {
        let mut r = Report {
            date: "2026-05-01T12:00:00Z".into(),
            command: "cargo xtask bench".into(),
            machine: Machine { cpu_model: "AMD EPYC".into(), cores: 2, memory_bytes: 24 << 30 },
            versions: vec![("rustc".into(), "1.95.0".into())],
            crypto: vec![
                CryptoOp { name: ARGON2.into(), ops_per_sec: 32.0, cpu_us_per_op: Some(24_000.0) },
                CryptoOp { name: "rs256_sign".into(), ops_per_sec: 1400.0, cpu_us_per_op: None },
            ],
            ..Report::default()
        };
        r.ceilings.push(scenario("ceiling_token", &[(System::Ceiling, 10_000.0)], None));
        r.ceilings.push(scenario("ceiling_argon2", &[(System::Ceiling, 32.0)], None));
        if let Some(l) = r.ceilings[1].results[0].result.as_mut() {
            l.cpu_us_per_req = Some(24_000.0);
        }
        r.scenarios.push(scenario(
            "client_credentials",
            &[(System::Tessera, 9_000.0), (System::Peer, 1_500.0), (System::Peer2, 2_500.0)],
            Some("ceiling_token"),
        ));
        r.scenarios.push(scenario("signin", &[(System::Tessera, 28.0)], Some("ceiling_argon2")));
        r.scenarios.push(scenario(
            "refresh",
            &[(System::Tessera, 2_000.0), (System::Peer, 1_000.0)],
            None,
        ));
        let mut skipped = ScenarioReport::new("tokeninfo", "GET /oauth2/v3/tokeninfo", "");
        skipped.outcome =
            Outcome::Skipped { reason: "GET /oauth2/v3/tokeninfo answers 404".into() };
        r.scenarios.push(skipped);
        if let Some(l) = r.scenarios[1].results[0].result.as_mut() {
            l.cpu_us_per_req = Some(25_000.0);
        }
        r.resources.tessera_idle_rss_bytes = Some(12 << 20);
        r.resources.ready_restart_median_ms = Some(140.0);
        r.resources.ready_restart_ms = vec![140.0; 5];
        r.growth = vec![
            GrowthStep {
                credentials: 10_000,
                p99_us: 1000,
                db_bytes: 10 << 20,
                ..GrowthStep::default()
            },
            GrowthStep {
                credentials: 10_000_000,
                p99_us: 1400,
                db_bytes: 2 << 30,
                ..GrowthStep::default()
            },
        ];
        r.evaluate_targets();
        r
    }

    fn target<'a>(r: &'a Report, prefix: &str) -> &'a TargetRow {
        r.targets
            .iter()
            .find(|t| t.target.starts_with(prefix))
            .unwrap_or_else(|| panic!("no target {prefix}"))
    }

    #[test]
    fn targets_are_met_missed_or_not_measured() {
        let r = sample();
        let cc = target(&r, "client_credentials ≥ 5×");
        assert_eq!((cc.status, cc.measured.as_str()), (TargetStatus::Met, "6.00×"));
        let cc2 = target(&r, "client_credentials ≥ 4×");
        assert_eq!((cc2.status, cc2.measured.as_str()), (TargetStatus::Missed, "3.60×"));
        let mint = target(&r, "client_credentials ≥ 80%");
        assert_eq!(
            (mint.status, mint.measured.as_str()),
            (TargetStatus::Met, "90% (by CPU time: 100%)")
        );
        let signin = target(&r, "signin ≥ 90%");
        assert_eq!(
            (signin.status, signin.measured.as_str()),
            (TargetStatus::Missed, "88% (by CPU time: 96%)")
        );
        assert_eq!(target(&r, "refresh ≥ 3×").status, TargetStatus::Missed);
        // A ceiling run in turns with the scenario wins over the ceiling's own section.
        let mut alongside = r.clone();
        let mut own = load("ceiling", 29.0, 30_000, 60_000);
        own.cpu_us_per_req = Some(24_000.0);
        alongside.scenarios[1].results.push(SystemResult {
            system: System::Ceiling,
            result: Some(own),
            error: None,
        });
        alongside.evaluate_targets();
        let signin = target(&alongside, "signin ≥ 90%");
        assert_eq!(
            (signin.status, signin.measured.as_str()),
            (TargetStatus::Met, "97% (by CPU time: 96%)")
        );
        let ti = target(&r, "tokeninfo");
        assert_eq!(ti.status, TargetStatus::NotMeasured);
        assert!(ti.measured.contains("answers 404"), "{}", ti.measured);
        assert_eq!(target(&r, "introspection").status, TargetStatus::NotMeasured);
        assert_eq!(target(&r, "idle RSS").status, TargetStatus::Met);
        assert_eq!(target(&r, "ready").status, TargetStatus::Missed);
        let flat = target(&r, "flat session p99");
        assert_eq!(flat.status, TargetStatus::Met);
        assert!(
            flat.measured.contains("10k → 10M") && flat.measured.contains("1.40×"),
            "{}",
            flat.measured
        );
    }

    #[test]
    fn issue_targets_for_refresh_code_exchange_session_and_postgresql() {
        let mut r = sample();
        let refresh = target(&r, "refresh ≥ 80% of the raw RS256");
        assert_eq!(
            (refresh.status, refresh.measured.as_str()),
            (TargetStatus::Met, "143% of 1,400/s")
        );
        assert_eq!(target(&r, "code_exchange ≥ 2×").status, TargetStatus::NotMeasured);
        assert_eq!(target(&r, "session ≥ 50%").status, TargetStatus::NotMeasured);
        for prefix in
            ["PostgreSQL, one node", "PostgreSQL, two nodes: no", "PostgreSQL, two nodes: server"]
        {
            let t = target(&r, prefix);
            assert_eq!(
                (t.status, t.measured.as_str()),
                (TargetStatus::NotMeasured, "not measured (no PostgreSQL runs)")
            );
        }
        let with = |rps: f64, cpu: f64| {
            let mut l = load("pg", rps, 500, 2000);
            l.cpu_us_per_req = Some(cpu);
            SystemResult { system: System::TesseraPg, result: Some(l), error: None }
        };
        // client_credentials: SQLite 9,000/s at 120 µs. refresh: 2,000/s at 120 µs.
        let [cc, _, refresh, ..] = &mut r.scenarios[..] else { panic!("the sample's scenarios") };
        cc.results.push(with(4_000.0, 150.0));
        cc.results.push(SystemResult { system: System::TesseraPg2, ..with(4_400.0, 180.0) });
        refresh.results.push(with(1_500.0, 100.0));
        refresh.results.push(SystemResult { system: System::TesseraPg2, ..with(1_400.0, 105.0) });
        r.evaluate_targets();
        let postgres = |r: &Report| -> Vec<(TargetStatus, String)> {
            ["PostgreSQL, one node", "PostgreSQL, two nodes: no", "PostgreSQL, two nodes: server"]
                .map(|prefix| target(r, prefix))
                .map(|t| (t.status, t.measured.clone()))
                .to_vec()
        };
        let missed = |text: &str| (TargetStatus::Missed, text.to_owned());
        assert_eq!(
            postgres(&r),
            [
                missed("1 of 2 endpoints: client_credentials 44%"),
                missed("1 of 2 endpoints: refresh 93%"),
                missed("1 of 2 endpoints: client_credentials 120%"),
            ]
        );
        let [cc, _, refresh, ..] = &mut r.scenarios[..] else { panic!("the sample's scenarios") };
        cc.results.truncate(3);
        if let Some(l) = refresh.results[3].result.as_mut() {
            l.rps = 1_600.0;
        }
        r.evaluate_targets();
        let met = |text: &str| (TargetStatus::Met, format!("all 1 endpoints; closest: {text}"));
        assert_eq!(postgres(&r), [met("refresh 75%"), met("refresh 107%"), met("refresh 105%")]);
    }

    #[test]
    fn markdown_has_every_section_and_flags() {
        let mut r = sample();
        r.scenarios[0].canary = Some(Canary::new(1000.0, 700.0));
        r.notes.push("PEER NOT RUN: npm unreachable".into());
        r.evaluate_targets();
        let md = render_markdown(&r);
        for needle in [
            "# tessera benchmark report",
            "- Command: `cargo xtask bench`",
            "AMD EPYC, 2 cores",
            "| client_credentials ≥ 5× one peer process | 6.00× (canary moved) | met |",
            "| client_credentials | 9,000 | 1,500 | 6.00× | 1.00× | 2,500 | 3.60× | ceiling_token: 10,000/s | 90% | 100% |",
            "| signin | 28.0 | – | – | – | – | – | ceiling_argon2: 32.0/s | 88% | 96% |",
            "**-30% (flagged)**",
            "> **PEER NOT RUN: npm unreachable**",
            "- `tokeninfo` (GET /oauth2/v3/tokeninfo): skipped: GET /oauth2/v3/tokeninfo answers 404",
            "| 10k | 0.0 | 0 µs | 1.00 ms | 0 | 0.0 s | 10.0 MiB | 1000.0 MiB | not measured |",
            "| 10M | 0.0 | 0 µs | 1.40 ms | 0 | 0.0 s | 2.00 GiB | 204.0 MiB | not measured |",
            "| argon2id_m19456_t2_p1 | 32.0 | 24.00 ms |",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in:\n{md}");
        }
        let json = serde_json::to_value(&r).unwrap_or_default();
        assert_eq!(json["scenarios"][3]["outcome"]["status"], "skipped");
        assert_eq!(json["scenarios"][0]["results"][1]["system"], "peer");
    }

    #[test]
    fn slow_endpoints_and_statements_are_reported() {
        let mut r = sample();
        let md = render_markdown(&r);
        assert!(md.contains("All 3 tessera runs at 32 connections are within."), "{md}");
        let mut slow = load("pg", 64.0, 496_000, 900_000);
        slow.concurrency = 32;
        r.scenarios[2].results.push(SystemResult {
            system: System::TesseraPg,
            result: Some(slow),
            error: None,
        });
        // Fewer connections (a scenario's own limit) are not what the check is about.
        let mut few = load("pg", 64.0, 90_000, 900_000);
        few.concurrency = 10;
        r.scenarios[0].results.push(SystemResult {
            system: System::TesseraPg2,
            result: Some(few),
            error: None,
        });
        let (checked, flagged) = r.slow_runs();
        assert_eq!(checked, 4);
        assert_eq!(
            flagged,
            [SlowRun {
                scenario: "refresh".into(),
                system: System::TesseraPg,
                p50_us: 496_000,
                rps: 64.0
            }]
        );
        r.statements = vec![
            StatementCount {
                scenario: "refresh".into(),
                backend: "SQLite".into(),
                per_request: vec![7, 6, 6],
                last: vec!["SELECT credentials".into()],
                error: None,
            },
            StatementCount {
                scenario: "refresh".into(),
                backend: "PostgreSQL".into(),
                per_request: vec![6, 6],
                last: vec!["SELECT credentials".into(), "INSERT credentials".into()],
                error: None,
            },
            StatementCount {
                scenario: "session".into(),
                backend: "PostgreSQL".into(),
                error: Some("GET /x: expected [200], got 500".into()),
                ..StatementCount::default()
            },
        ];
        let md = render_markdown(&r);
        for needle in [
            "**1 of 4 tessera runs at 32 connections exceed it**",
            "| refresh | tessera (PostgreSQL) | **496.00 ms** | 64.0 |",
            "| scenario | SQLite statements | PostgreSQL statements | writes | statements |",
            "| refresh | 6 (6–7) | 6 | 1 | SELECT credentials; INSERT credentials |",
            "| session | – | failed: GET /x: expected [200], got 500 | – | – |",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in:\n{md}");
        }
    }

    #[test]
    fn push_targets_and_section_appear_when_the_section_ran() {
        use crate::bench::push::{Phase, PushReport};
        let mut r = sample();
        r.evaluate_targets();
        assert!(!r.targets.iter().any(|t| t.target.starts_with("push")));
        r.push = vec![PushReport {
            backend: "SQLite".into(),
            devices: 10_000,
            connected: 10_000,
            bytes_per_device: Some(3000.0),
            latency: Some(Phase {
                duration_s: 10.0,
                multicasts: 500,
                recipients: 50_000,
                accepted: 50_000,
                p50_us: Some(9_000),
                p99_us: Some(60_000),
                ..Phase::default()
            }),
            throughput: Some(Phase {
                duration_s: 10.0,
                multicasts: 100,
                recipients: 50_000,
                accepted: 49_000,
                delivered_in_window: 250_000,
                delivered_per_sec: 25_000.0,
                ..Phase::default()
            }),
            comparison: "No other push server ran.".into(),
            ..PushReport::default()
        }];
        r.evaluate_targets();
        assert_eq!(target(&r, "push (SQLite): server memory").status, TargetStatus::Met);
        let t = target(&r, "push (SQLite): send→deliver ≥");
        assert_eq!(
            (t.status, t.measured.as_str()),
            (TargetStatus::Met, "25,000/s (98% of recipients accepted)")
        );
        assert_eq!(target(&r, "push (SQLite): p99").status, TargetStatus::Missed);
        let md = render_markdown(&r);
        assert!(md.contains("## Push delivery (SQLite, WebSocket)"), "{md}");
        assert!(md.contains("No other push server ran."), "{md}");
        // A section that failed before measuring shows its targets as not measured.
        r.push = vec![PushReport { backend: "SQLite".into(), ..PushReport::default() }];
        r.evaluate_targets();
        assert_eq!(target(&r, "push (SQLite): p99").status, TargetStatus::NotMeasured);
        assert_eq!(target(&r, "push (SQLite): send→deliver ≥").status, TargetStatus::NotMeasured);
    }

    #[test]
    fn docs_keep_their_prose_and_swap_the_report() {
        let docs = format!("# Benchmarks\n\nHow to run.\n\n{BEGIN}\nold\n{END}\n\nAfter.\n");
        let out = splice_docs(&docs, "# tessera benchmark report\n\n## Targets\nnew\n");
        assert!(out.starts_with("# Benchmarks\n\nHow to run.\n\n"));
        assert!(out.contains("### Latest report\n\n#### Targets\nnew"));
        assert!(!out.contains("old"));
        assert!(out.ends_with(&format!("{END}\n\nAfter.\n")));
        let fresh = splice_docs("# Benchmarks", "# tessera benchmark report\n");
        assert!(fresh.contains(BEGIN) && fresh.contains(END));
        assert_eq!(splice_docs(&fresh, "# tessera benchmark report\n"), fresh);
    }
}
