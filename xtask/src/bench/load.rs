//! The load generator: request templates, per-connection workers, and interleaved timed runs.
//!
//! A scenario is a [`Plan`]: `setup` requests run once per connection (and again after an
//! error, e.g. to get a new refresh-token chain), `pre` requests run unmeasured before every
//! iteration (fetch a CSRF token, an authorization code), and `main` is the measured request.
//! Templates say `{name}` for a variable: a fixture (a value list cycles per iteration) or a value
//! captured from an earlier answer. Values are percent-encoded in paths and form bodies and
//! inserted as they are in headers.
//!
//! Every loop is bounded twice: by a deadline and by a request count; every request by a timeout.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::http::{self, Conn, Response};
use super::oauth1::{self, Sign, Signer};
use super::procs;
use super::stats;

/// Pulls a value out of an answer into a variable.
#[derive(Clone, Debug)]
pub(crate) enum Capture {
    /// A top-level string (or number) field of a JSON body.
    Json { field: &'static str, var: &'static str },
    /// Like `Json`, but an answer without the field keeps the variable as it was (a refresh
    /// answer carries a new refresh token only where the server rotates them).
    JsonIfPresent { field: &'static str, var: &'static str },
    /// The `value` of the `<input name=...>` in an HTML body.
    Hidden { name: &'static str, var: &'static str },
    /// The value of a cookie the answer sets.
    Cookie { name: &'static str, var: &'static str },
    /// A query (or fragment) parameter of the `Location` header.
    Location { param: &'static str, var: &'static str },
}

impl Capture {
    fn var(&self) -> &'static str {
        match self {
            Capture::Json { var, .. }
            | Capture::JsonIfPresent { var, .. }
            | Capture::Hidden { var, .. }
            | Capture::Cookie { var, .. }
            | Capture::Location { var, .. } => var,
        }
    }

    fn apply(&self, resp: &Response, vars: &mut HashMap<String, String>) -> Result<(), String> {
        let value = match self {
            Capture::Json { field, .. } | Capture::JsonIfPresent { field, .. } => {
                serde_json::from_slice::<serde_json::Value>(&resp.body).ok().and_then(|v| {
                    match v.get(field)? {
                        serde_json::Value::String(s) => Some(s.clone()),
                        serde_json::Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    }
                })
            }
            Capture::Hidden { name, .. } => {
                hidden_input(&String::from_utf8_lossy(&resp.body), name)
            }
            Capture::Cookie { name, .. } => {
                resp.header_all("set-cookie").find_map(|c| cookie_value(c, name))
            }
            Capture::Location { param, .. } => {
                resp.header("location").and_then(|l| location_param(l, param))
            }
        };
        match value {
            Some(v) => {
                vars.insert(self.var().to_owned(), v);
                Ok(())
            }
            None if matches!(self, Capture::JsonIfPresent { .. })
                && vars.contains_key(self.var()) =>
            {
                Ok(())
            }
            None => Err(format!("no {self:?} in the answer ({}: {})", resp.status, resp.snippet())),
        }
    }
}

/// One request template.
#[derive(Clone, Debug)]
pub(crate) struct Req {
    pub(crate) method: &'static str,
    /// Path and query; `{var}` is percent-encoded.
    pub(crate) path: &'static str,
    /// Header templates; `{var}` inserted as is.
    pub(crate) headers: Vec<(&'static str, &'static str)>,
    /// An urlencoded form body template; `{var}` is percent-encoded.
    pub(crate) form: Option<&'static str>,
    /// A JSON body template instead of a form; `{var}` is escaped as JSON string content.
    pub(crate) json: Option<&'static str>,
    /// Signed at send time: the signature (a fresh nonce each request) is written to the variable
    /// [`oauth1::AUTHORIZATION`] before the request is rendered.
    pub(crate) sign: Option<Sign>,
    /// Statuses that count as success.
    pub(crate) expect: &'static [u16],
    pub(crate) captures: Vec<Capture>,
}

impl Req {
    pub(crate) fn get(path: &'static str) -> Self {
        Req {
            method: "GET",
            path,
            headers: Vec::new(),
            form: None,
            json: None,
            sign: None,
            expect: &[200],
            captures: Vec::new(),
        }
    }

    pub(crate) fn post(path: &'static str, form: &'static str) -> Self {
        Req {
            method: "POST",
            path,
            headers: Vec::new(),
            form: Some(form),
            json: None,
            sign: None,
            expect: &[200],
            captures: Vec::new(),
        }
    }

    /// A POST with a JSON body template.
    pub(crate) fn post_json(path: &'static str, json: &'static str) -> Self {
        Req { json: Some(json), ..Req::post(path, "") }.without_form()
    }

    fn without_form(mut self) -> Self {
        self.form = None;
        self
    }

    /// Signs each request with `sign` just before it is sent.
    pub(crate) fn signed(mut self, sign: Sign) -> Self {
        self.sign = Some(sign);
        self
    }

    pub(crate) fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    pub(crate) fn expect(mut self, statuses: &'static [u16]) -> Self {
        self.expect = statuses;
        self
    }

    pub(crate) fn capture(mut self, capture: Capture) -> Self {
        self.captures.push(capture);
        self
    }

    /// The path without its query: what a probe asks for.
    pub(crate) fn route(&self) -> &'static str {
        self.path.split('?').next().unwrap_or(self.path)
    }

    fn placeholders(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for t in [self.path]
            .into_iter()
            .chain(self.headers.iter().map(|(_, v)| *v))
            .chain(self.form)
            .chain(self.json)
        {
            let mut rest = t;
            while let Some((_, name, after)) = next_var(rest) {
                out.insert(name.to_owned());
                rest = after;
            }
        }
        out
    }

    fn render(&self, vars: &HashMap<String, String>, host: &str) -> Result<Vec<u8>, String> {
        let target = fill(self.path, vars, Encoding::Percent)?;
        let headers = self
            .headers
            .iter()
            .map(|(n, v)| Ok(((*n).to_owned(), fill(v, vars, Encoding::None)?)))
            .collect::<Result<Vec<_>, String>>()?;
        let body = match (self.form, self.json) {
            (Some(f), _) => {
                Some(("application/x-www-form-urlencoded", fill(f, vars, Encoding::Percent)?))
            }
            (None, Some(j)) => Some(("application/json", fill(j, vars, Encoding::Json)?)),
            (None, None) => None,
        };
        Ok(http::request(
            self.method,
            &target,
            host,
            &headers,
            body.as_ref().map(|(kind, b)| (*kind, b.as_bytes())),
        ))
    }
}

/// How a variable's value is written into a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// As it is (headers).
    None,
    /// Percent-encoded (paths, queries, form bodies).
    Percent,
    /// Escaped as the content of a JSON string (the template holds the quotes).
    Json,
}

/// Replaces every `{name}` in `template` with its variable, written as `encoding` says.
pub(crate) fn fill(
    template: &str,
    vars: &HashMap<String, String>,
    encoding: Encoding,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some((before, name, after)) = next_var(rest) {
        out.push_str(before);
        let value = vars.get(name).ok_or_else(|| format!("no value for {{{name}}}"))?;
        match encoding {
            Encoding::None => out.push_str(value),
            Encoding::Percent => out.extend(form_urlencoded::byte_serialize(value.as_bytes())),
            Encoding::Json => {
                let quoted = serde_json::Value::String(value.clone()).to_string();
                out.push_str(&quoted[1..quoted.len() - 1]);
            }
        }
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

/// The next `{name}` of a template, where a name is lower-case letters, digits and `_` (so a JSON
/// template's own braces stay as they are): the text before it, the name, and the text after it.
fn next_var(template: &str) -> Option<(&str, &str, &str)> {
    let mut from = 0;
    while let Some(open) = template[from..].find('{').map(|at| at + from) {
        let tail = &template[open + 1..];
        let len = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        if len > 0 && tail[len..].starts_with('}') {
            return Some((&template[..open], &tail[..len], &tail[len + 1..]));
        }
        from = open + 1;
    }
    None
}

/// What one connection does: see the module documentation.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) setup: Vec<Req>,
    pub(crate) pre: Vec<Req>,
    pub(crate) main: Req,
}

impl Plan {
    pub(crate) fn main(main: Req) -> Self {
        Plan { setup: Vec::new(), pre: Vec::new(), main }
    }

    pub(crate) fn setup(mut self, req: Req) -> Self {
        self.setup.push(req);
        self
    }

    pub(crate) fn pre(mut self, req: Req) -> Self {
        self.pre.push(req);
        self
    }

    pub(crate) fn requests(&self) -> impl Iterator<Item = &Req> {
        self.setup.iter().chain(&self.pre).chain(std::iter::once(&self.main))
    }

    /// Variables the plan needs from fixtures (the ones no earlier request captures).
    pub(crate) fn needed_fixtures(&self) -> BTreeSet<String> {
        let mut captured = BTreeSet::new();
        let mut needed = BTreeSet::new();
        for req in self.requests() {
            if let Some(sign) = req.sign {
                needed.extend(
                    sign.inputs()
                        .iter()
                        .filter(|it| !captured.contains(**it))
                        .map(|it| (*it).to_owned()),
                );
                captured.insert(oauth1::AUTHORIZATION.to_owned());
            }
            for p in req.placeholders() {
                if !captured.contains(&p) {
                    needed.insert(p);
                }
            }
            captured.extend(req.captures.iter().map(|c| c.var().to_owned()));
        }
        needed
    }
}

/// Fixture values of one system under test; a list of several values cycles per iteration.
#[derive(Clone, Debug, Default)]
pub(crate) struct Fixtures(pub(crate) HashMap<String, Vec<String>>);

impl Fixtures {
    pub(crate) fn set(&mut self, key: &str, value: impl Into<String>) {
        self.0.insert(key.to_owned(), vec![value.into()]);
    }

    pub(crate) fn set_list(&mut self, key: &str, values: Vec<String>) {
        if !values.is_empty() {
            self.0.insert(key.to_owned(), values);
        }
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
}

/// One system under test for one scenario: where, what, and which processes to watch.
pub(crate) struct Target {
    pub(crate) label: String,
    pub(crate) addrs: Vec<SocketAddr>,
    pub(crate) pids: Vec<u32>,
    pub(crate) plan: Plan,
    pub(crate) fixtures: Fixtures,
    pub(crate) concurrency: usize,
}

#[derive(Clone, Debug)]
pub(crate) struct LoadConfig {
    pub(crate) warmup: Duration,
    pub(crate) runs: usize,
    pub(crate) run: Duration,
    /// The most requests one run may send, all connections together.
    pub(crate) max_requests: u64,
    pub(crate) timeout: Duration,
}

/// One worker: one connection and its variables.
struct Worker {
    conn: Conn,
    host: String,
    plan: Arc<Plan>,
    vars: HashMap<String, String>,
    cycles: Arc<Vec<(String, Vec<String>)>>,
    iteration: usize,
    offset: usize,
    cached_main: Option<Vec<u8>>,
    needs_setup: bool,
    signer: Signer,
}

impl Worker {
    fn new(index: usize, addr: SocketAddr, plan: Arc<Plan>, fixtures: &Fixtures) -> Self {
        let mut vars = HashMap::new();
        let mut cycles = Vec::new();
        for (k, v) in &fixtures.0 {
            match v.as_slice() {
                [one] => {
                    vars.insert(k.clone(), one.clone());
                }
                _ => {
                    // Setup requests run before the first iteration picks a value: give them one.
                    vars.insert(k.clone(), v[(index * 7919) % v.len()].clone());
                    cycles.push((k.clone(), v.clone()));
                }
            }
        }
        let needs_setup = !plan.setup.is_empty();
        Worker {
            conn: Conn::new(addr),
            host: addr.to_string(),
            plan,
            vars,
            cycles: Arc::new(cycles),
            iteration: 0,
            offset: index * 7919,
            cached_main: None,
            needs_setup,
            signer: Signer::new(index),
        }
    }

    /// `req`'s bytes with this worker's variables, signed first if it is a signed request.
    fn render(&mut self, req: &Req) -> Result<Vec<u8>, String> {
        if let Some(sign) = req.sign {
            let authorization = self.signer.sign(sign, &self.vars)?;
            self.vars.insert(oauth1::AUTHORIZATION.to_owned(), authorization);
        }
        req.render(&self.vars, &self.host)
    }

    async fn exchange(&mut self, req: &Req) -> Result<(), String> {
        let bytes = self.render(req)?;
        let resp = self
            .conn
            .send(&bytes)
            .await
            .map_err(|e| format!("{} {}: {e}", req.method, req.route()))?;
        check(req, &resp)?;
        for c in &req.captures {
            c.apply(&resp, &mut self.vars)?;
        }
        Ok(())
    }

    /// One iteration; the latency of the measured request.
    async fn iterate(&mut self) -> Result<Duration, String> {
        self.before_main().await?;
        self.send_main().await
    }

    /// The first half of an iteration: setup if needed, the next cycled values, `pre` requests.
    async fn before_main(&mut self) -> Result<(), String> {
        let plan = Arc::clone(&self.plan);
        if self.needs_setup {
            for req in &plan.setup {
                self.exchange(req).await?;
            }
            self.needs_setup = false;
            self.cached_main = None;
        }
        for (k, values) in self.cycles.iter() {
            let v = &values[(self.offset + self.iteration) % values.len()];
            self.vars.insert(k.clone(), v.clone());
        }
        self.iteration += 1;
        for req in &plan.pre {
            self.exchange(req).await?;
        }
        Ok(())
    }

    /// The second half of an iteration: the measured request, checked; its latency.
    async fn send_main(&mut self) -> Result<Duration, String> {
        let plan = Arc::clone(&self.plan);
        let main = &plan.main;
        let cacheable = plan.pre.is_empty()
            && main.captures.is_empty()
            && self.cycles.is_empty()
            && main.sign.is_none();
        let bytes = match self.cached_main.take() {
            Some(b) => b,
            None => self.render(main)?,
        };
        let start = Instant::now();
        let resp = self
            .conn
            .send(&bytes)
            .await
            .map_err(|e| format!("{} {}: {e}", main.method, main.route()));
        let latency = start.elapsed();
        if cacheable {
            self.cached_main = Some(bytes);
        }
        let resp = resp?;
        check(main, &resp)?;
        for c in &main.captures {
            c.apply(&resp, &mut self.vars)?;
        }
        Ok(latency)
    }

    fn failed(&mut self) {
        if !self.plan.setup.is_empty() {
            self.needs_setup = true;
        }
    }
}

fn check(req: &Req, resp: &Response) -> Result<(), String> {
    if req.expect.contains(&resp.status) {
        Ok(())
    } else {
        Err(format!(
            "{} {}: expected {:?}, got {}: {}",
            req.method,
            req.route(),
            req.expect,
            resp.status,
            resp.snippet()
        ))
    }
}

/// Runs `plan` once on one connection (setup, pre and main requests, all checked) and returns
/// the variables it ended with: fixtures and captures.
pub(crate) async fn run_once(
    addr: SocketAddr,
    plan: &Plan,
    fixtures: &Fixtures,
) -> Result<HashMap<String, String>, String> {
    let mut worker = Worker::new(0, addr, Arc::new(plan.clone()), fixtures);
    worker.iterate().await?;
    Ok(worker.vars)
}

/// One connection driven a step at a time, to observe the server around the measured request
/// alone (the statement counts): [`Stepper::before_main`] runs the setup (the first time) and the
/// `pre` requests, [`Stepper::main`] the measured request.
pub(crate) struct Stepper(Worker);

impl Stepper {
    pub(crate) fn new(addr: SocketAddr, plan: &Plan, fixtures: &Fixtures) -> Stepper {
        Stepper(Worker::new(0, addr, Arc::new(plan.clone()), fixtures))
    }

    pub(crate) async fn before_main(&mut self) -> Result<(), String> {
        self.0.before_main().await
    }

    pub(crate) async fn main(&mut self) -> Result<(), String> {
        self.0.send_main().await.map(drop)
    }
}

/// What one connection saw during one timed phase.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    error_samples: Vec<String>,
}

async fn drive(
    mut worker: Worker,
    deadline: Instant,
    cap: u64,
    timeout: Duration,
) -> (Worker, Tally) {
    let mut tally = Tally::default();
    let mut sent = 0u64;
    while sent < cap && Instant::now() < deadline {
        sent += 1;
        let outcome = match tokio::time::timeout(timeout, worker.iterate()).await {
            Ok(r) => r,
            Err(_) => {
                worker.conn.reset();
                Err(format!("no answer within {timeout:?}"))
            }
        };
        match outcome {
            Ok(latency) => {
                tally.latencies_us.push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX))
            }
            Err(e) => {
                tally.errors += 1;
                if tally.error_samples.len() < 3 {
                    tally.error_samples.push(e);
                }
                worker.failed();
                // Keep a dead server from turning this into a busy loop.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
    (worker, tally)
}

/// One timed run of one target.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RunStats {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed_s: f64,
    pub(crate) rps: f64,
    pub(crate) p50_us: u32,
    pub(crate) p99_us: u32,
    pub(crate) max_us: u32,
    /// Server CPU time (user + system, all its processes) per successful request.
    pub(crate) cpu_us_per_req: Option<f64>,
    pub(crate) peak_rss_bytes: Option<u64>,
}

/// A target's result: medians over its runs.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct LoadResult {
    pub(crate) label: String,
    pub(crate) processes: usize,
    pub(crate) concurrency: usize,
    pub(crate) rps: f64,
    pub(crate) p50_us: u32,
    pub(crate) p99_us: u32,
    pub(crate) errors: u64,
    pub(crate) error_samples: Vec<String>,
    pub(crate) cpu_us_per_req: Option<f64>,
    pub(crate) peak_rss_bytes: Option<u64>,
    pub(crate) reconnects: u64,
    pub(crate) runs: Vec<RunStats>,
}

impl LoadResult {
    fn from_runs(
        target: &Target,
        runs: Vec<RunStats>,
        error_samples: Vec<String>,
        reconnects: u64,
    ) -> Self {
        let med =
            |f: &dyn Fn(&RunStats) -> f64| stats::median(&runs.iter().map(f).collect::<Vec<_>>());
        let cpu: Vec<f64> = runs.iter().filter_map(|r| r.cpu_us_per_req).collect();
        LoadResult {
            label: target.label.clone(),
            processes: target.addrs.len(),
            concurrency: target.concurrency,
            rps: med(&|r| r.rps).unwrap_or(0.0),
            p50_us: med(&|r| f64::from(r.p50_us)).unwrap_or(0.0) as u32,
            p99_us: med(&|r| f64::from(r.p99_us)).unwrap_or(0.0) as u32,
            errors: runs.iter().map(|r| r.errors).sum(),
            error_samples,
            cpu_us_per_req: stats::median(&cpu),
            peak_rss_bytes: runs.iter().filter_map(|r| r.peak_rss_bytes).max(),
            reconnects,
            runs,
        }
    }
}

struct Prepared {
    target: Target,
    workers: Vec<Worker>,
    runs: Vec<RunStats>,
    error_samples: Vec<String>,
}

/// Measures every target: one checked iteration per connection, a warm-up, then `runs` timed
/// runs taken in turns (target A, target B, A, B, ...) so that a machine that slows down part
/// way hurts every target alike. A target whose checked iteration fails gets `Err`.
pub(crate) async fn measure(
    targets: Vec<Target>,
    cfg: &LoadConfig,
) -> Vec<Result<LoadResult, String>> {
    let mut slots: Vec<Result<Prepared, String>> = Vec::new();
    for target in targets {
        slots.push(prepare(target, cfg).await);
    }
    for p in slots.iter_mut().flatten() {
        let (workers, _) = phase(std::mem::take(&mut p.workers), cfg.warmup, cfg, None).await;
        p.workers = workers;
    }
    for _ in 0..cfg.runs {
        for p in slots.iter_mut().flatten() {
            let pids = p.target.pids.clone();
            let (workers, stats) =
                phase(std::mem::take(&mut p.workers), cfg.run, cfg, Some(&pids)).await;
            p.workers = workers;
            if let Some((run, samples)) = stats {
                for s in samples {
                    if p.error_samples.len() < 5 && !p.error_samples.contains(&s) {
                        p.error_samples.push(s);
                    }
                }
                p.runs.push(run);
            }
        }
    }
    slots
        .into_iter()
        .map(|slot| {
            slot.map(|p| {
                let reconnects = p.workers.iter().map(|w| w.conn.reconnects).sum();
                LoadResult::from_runs(&p.target, p.runs, p.error_samples, reconnects)
            })
        })
        .collect()
}

async fn prepare(target: Target, cfg: &LoadConfig) -> Result<Prepared, String> {
    if target.addrs.is_empty() {
        return Err("no address to send to".into());
    }
    let plan = Arc::new(target.plan.clone());
    // Only the fixtures the plan uses (an unused value list would defeat the request cache).
    let needed = plan.needed_fixtures();
    let mut fixtures = target.fixtures.clone();
    fixtures.0.retain(|k, _| needed.contains(k));
    let target = Target { fixtures, ..target };
    let mut workers: Vec<Worker> = (0..target.concurrency.max(1))
        .map(|i| {
            Worker::new(
                i,
                target.addrs[i % target.addrs.len()],
                Arc::clone(&plan),
                &target.fixtures,
            )
        })
        .collect();
    // Every connection does one checked iteration (this also runs its setup).
    let mut tasks = Vec::new();
    for mut w in workers.drain(..) {
        let timeout = cfg.timeout;
        tasks.push(tokio::spawn(async move {
            let r = match tokio::time::timeout(timeout, w.iterate()).await {
                Ok(r) => r.map(drop),
                Err(_) => Err(format!("no answer within {timeout:?}")),
            };
            (w, r)
        }));
    }
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok((w, r)) => {
                if let Err(e) = r {
                    first_error.get_or_insert(e);
                }
                workers.push(w);
            }
            Err(e) => {
                first_error.get_or_insert(format!("worker task failed: {e}"));
            }
        }
    }
    match first_error {
        Some(e) => Err(format!("{}: first request failed: {e}", target.label)),
        None => Ok(Prepared { target, workers, runs: Vec::new(), error_samples: Vec::new() }),
    }
}

/// Runs all workers for `length`; with `pids`, also measures and returns the run's statistics.
async fn phase(
    workers: Vec<Worker>,
    length: Duration,
    cfg: &LoadConfig,
    pids: Option<&[u32]>,
) -> (Vec<Worker>, Option<(RunStats, Vec<String>)>) {
    let n = workers.len().max(1) as u64;
    let cap = cfg.max_requests.div_ceil(n);
    let cpu_before = pids.map(procs::cpu_ticks_sum);
    let rss = pids.map(|p| RssSampler::start(p.to_vec()));
    let start = Instant::now();
    let deadline = start + length;
    let tasks: Vec<_> =
        workers.into_iter().map(|w| tokio::spawn(drive(w, deadline, cap, cfg.timeout))).collect();
    let mut workers = Vec::new();
    let mut tallies = Vec::new();
    for t in tasks {
        if let Ok((w, tally)) = t.await {
            workers.push(w);
            tallies.push(tally);
        }
    }
    let elapsed = start.elapsed();
    let cpu_after = pids.map(procs::cpu_ticks_sum);
    let peak_rss = match rss {
        Some(s) => s.stop().await,
        None => None,
    };
    if pids.is_none() {
        return (workers, None);
    }
    let mut latencies: Vec<u32> =
        tallies.iter().flat_map(|t| t.latencies_us.iter().copied()).collect();
    latencies.sort_unstable();
    let errors = tallies.iter().map(|t| t.errors).sum();
    let samples = tallies.into_iter().flat_map(|t| t.error_samples).collect();
    let ok = latencies.len() as u64;
    let cpu_us_per_req = match (cpu_before.flatten(), cpu_after.flatten()) {
        (Some(b), Some(a)) if ok > 0 && a >= b => {
            Some((a - b) as f64 * procs::tick_us() / ok as f64)
        }
        _ => None,
    };
    let run = RunStats {
        requests: ok,
        errors,
        elapsed_s: elapsed.as_secs_f64(),
        rps: ok as f64 / elapsed.as_secs_f64().max(1e-9),
        p50_us: stats::percentile(&latencies, 50.0).unwrap_or(0),
        p99_us: stats::percentile(&latencies, 99.0).unwrap_or(0),
        max_us: latencies.last().copied().unwrap_or(0),
        cpu_us_per_req,
        peak_rss_bytes: peak_rss,
    };
    (workers, Some((run, samples)))
}

/// Samples the summed VmRSS of some processes every 50 ms and keeps the largest.
struct RssSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Option<u64>>,
}

impl RssSampler {
    fn start(pids: Vec<u32>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut peak: Option<u64> = None;
            loop {
                if let Some(now) = pids.iter().map(|p| procs::rss_bytes(*p)).sum::<Option<u64>>() {
                    peak = Some(peak.map_or(now, |p| p.max(now)));
                }
                if flag.load(Ordering::Relaxed) {
                    break peak;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        RssSampler { stop, task }
    }

    async fn stop(self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.ok().flatten()
    }
}

/// The `value` attribute of the `<input>` whose `name` is `name`.
pub(crate) fn hidden_input(html: &str, name: &str) -> Option<String> {
    let mut rest = html;
    while let Some(start) = rest.find("<input") {
        let tag_end = rest[start..].find('>').map_or(rest.len(), |e| start + e);
        let tag = &rest[start..tag_end];
        if attr(tag, "name").as_deref() == Some(name) {
            return attr(tag, "value");
        }
        rest = &rest[tag_end..];
    }
    None
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let mut search = 0;
    while let Some(pos) = tag[search..].find(name) {
        let at = search + pos;
        search = at + name.len();
        let before_ok = tag[..at].ends_with(|c: char| c.is_ascii_whitespace());
        let after = tag[search..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let after = after[1..].trim_start();
        let quote = after.chars().next()?;
        let value = if quote == '"' || quote == '\'' {
            let body = &after[1..];
            &body[..body.find(quote)?]
        } else {
            after.split(|c: char| c.is_ascii_whitespace() || c == '/').next().unwrap_or("")
        };
        return Some(unescape_html(value));
    }
    None
}

/// Decodes the character references an HTML attribute value may hold: the named five and any
/// numeric `&#NN;` / `&#xHH;` (template engines write `&` as `&#38;`).
fn unescape_html(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let Some(end) = tail.find(';').filter(|end| *end <= 10) else {
            out.push('&');
            rest = &tail[1..];
            continue;
        };
        let entity = &tail[1..end];
        let decoded = match entity {
            "quot" => Some('"'),
            "apos" => Some('\''),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The value of cookie `name` in one `Set-Cookie` header.
pub(crate) fn cookie_value(set_cookie: &str, name: &str) -> Option<String> {
    let (n, v) = set_cookie.split(';').next()?.split_once('=')?;
    (n.trim() == name).then(|| v.trim().trim_matches('"').to_owned())
}

/// A query or fragment parameter of a URL.
pub(crate) fn location_param(url: &str, param: &str) -> Option<String> {
    let query = url.split_once(['?', '#']).map(|(_, q)| q)?;
    query.split(['&', '#']).filter_map(|kv| kv.split_once('=')).find_map(|(k, v)| {
        (k == param)
            .then(|| {
                form_urlencoded::parse(format!("x={v}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            })
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn templates_encode_where_it_matters() {
        let v = vars(&[("a", "x y&z"), ("b", "1")]);
        assert_eq!(
            fill("/p?q={a}&b={b}", &v, Encoding::Percent).as_deref(),
            Ok("/p?q=x+y%26z&b=1")
        );
        assert_eq!(fill("Bearer {a}", &v, Encoding::None).as_deref(), Ok("Bearer x y&z"));
        assert_eq!(fill("{missing}", &v, Encoding::Percent), Err("no value for {missing}".into()));
        assert_eq!(unescape_html("a&#38;b&#x3D;c&amp;d&lt;&#60;&bogus;"), "a&b=c&d<<&bogus;");
        assert_eq!(fill("no vars", &v, Encoding::Percent).as_deref(), Ok("no vars"));
        assert_eq!(
            fill(r#"{"q":"{a}","n":{b}}"#, &v, Encoding::Json).as_deref(),
            Ok(r#"{"q":"x y&z","n":1}"#)
        );
    }

    #[test]
    fn plans_know_which_fixtures_they_need() {
        let plan = Plan::main(Req::post(
            "/token",
            "grant_type=refresh_token&refresh_token={rt}&client_id={client_id}",
        ))
        .setup(
            Req::get("/mint?c={challenge}")
                .capture(Capture::Json { field: "refresh_token", var: "rt" }),
        )
        .pre(Req::get("/x").header("cookie", "S={session}"));
        let needed: Vec<String> = plan.needed_fixtures().into_iter().collect();
        assert_eq!(needed, ["challenge", "client_id", "session"]);
        assert_eq!(Req::get("/a/b?c=d").route(), "/a/b");
    }

    #[test]
    fn captures_from_html_cookies_and_locations() {
        let html = r#"<form><input type="hidden" name="csrf" value="a&amp;b"><input name=email value='e@x'></form>"#;
        assert_eq!(hidden_input(html, "csrf").as_deref(), Some("a&b"));
        assert_eq!(hidden_input(html, "email").as_deref(), Some("e@x"));
        assert_eq!(hidden_input(html, "password"), None);
        let tricky = r#"<input value="v1" data-name="csrf" name="csrf">"#;
        assert_eq!(hidden_input(tricky, "csrf").as_deref(), Some("v1"));
        assert_eq!(cookie_value("TCSRF=abc; Path=/; HttpOnly", "TCSRF").as_deref(), Some("abc"));
        assert_eq!(cookie_value("OTHER=abc", "TCSRF"), None);
        assert_eq!(
            location_param("http://h/cb?state=s&code=c%2F1", "code").as_deref(),
            Some("c/1")
        );
        assert_eq!(location_param("http://h/cb#token=t", "token").as_deref(), Some("t"));
        assert_eq!(location_param("http://h/cb", "code"), None);
    }

    #[tokio::test]
    async fn measure_runs_bounded_by_count_and_reports_errors() -> anyhow::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A keep-alive server: "/ok" answers 200, anything else 500.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else { break };
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut have = Vec::new();
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        have.extend_from_slice(&buf[..n]);
                        while let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                            let ok = have.starts_with(b"GET /ok ");
                            have.drain(..end + 4);
                            let answer: &[u8] = if ok {
                                b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{\"n\":\"v1\"}\n"
                            } else {
                                b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n"
                            };
                            if s.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        let cfg = LoadConfig {
            warmup: Duration::from_millis(20),
            runs: 2,
            run: Duration::from_secs(5),
            max_requests: 400,
            timeout: Duration::from_secs(2),
        };
        let target = |path: &'static str| Target {
            label: path.into(),
            addrs: vec![addr],
            pids: vec![std::process::id()],
            plan: Plan::main(Req::get(path).capture(Capture::Json { field: "n", var: "n" })),
            fixtures: Fixtures::default(),
            concurrency: 4,
        };
        let started = Instant::now();
        let results = measure(vec![target("/ok"), target("/bad")], &cfg).await;
        // Bounded by count (400 per run), long before the 5 s deadline.
        assert!(started.elapsed() < Duration::from_secs(4));
        let ok = results[0].as_ref().map_err(|e| anyhow::format_err!("{e}"))?;
        assert_eq!(ok.runs.len(), 2);
        assert!(ok.runs.iter().all(|r| r.requests == 400 && r.errors == 0));
        assert!(ok.p50_us <= ok.p99_us && ok.rps > 0.0);
        assert!(ok.peak_rss_bytes.is_some());
        let bad = results[1].as_ref().err().cloned().unwrap_or_default();
        assert!(bad.contains("expected [200], got 500"), "{bad}");
        server.abort();
        Ok(())
    }
}
