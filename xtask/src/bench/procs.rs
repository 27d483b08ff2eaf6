//! Server processes: start, wait for ready, watch (/proc: RSS, CPU time), stop.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use super::http::{self, Conn};

/// A free loopback port (bound and released: good enough on a machine we have to ourselves).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
    Ok(l.local_addr()?.port())
}

pub(crate) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A server process we started.
pub(crate) struct Server {
    pub(crate) pid: u32,
    pub(crate) addr: SocketAddr,
    child: Child,
}

impl Server {
    /// Starts `cmd` (stdout and stderr to `log`) and waits until `GET ready_path` answers 200.
    /// Returns the server and the time from spawning to that answer.
    pub(crate) async fn start(
        label: &str,
        mut cmd: Command,
        addr: SocketAddr,
        log: &Path,
        ready_path: &str,
        timeout: Duration,
    ) -> anyhow::Result<(Server, Duration)> {
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err).kill_on_drop(true);
        let program = format!("{:?}", cmd.as_std().get_program());
        let started = Instant::now();
        let child = cmd.spawn().with_context(|| format!("starting {label} ({program})"))?;
        let pid = child.id().context("the process has no id")?;
        let mut server = Server { pid, addr, child };
        let request = http::request("GET", ready_path, &addr.to_string(), &[], None);
        let mut conn = Conn::new(addr);
        loop {
            if let Ok(resp) = conn.send(&request).await
                && resp.status == 200
            {
                return Ok((server, started.elapsed()));
            }
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "{label} exited ({status}) before GET {ready_path} answered 200; the end of its log ({}):\n{}",
                    log.display(),
                    log_tail(log, 15)
                );
            }
            if started.elapsed() > timeout {
                let tail = log_tail(log, 15);
                server.stop().await;
                bail!(
                    "{label}: GET {ready_path} did not answer 200 within {timeout:?}; the end of its log ({}):\n{tail}",
                    log.display()
                );
            }
            conn.reset();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    pub(crate) fn rss(&self) -> Option<u64> {
        rss_bytes(self.pid)
    }

    /// SIGTERM, then SIGKILL after 5 s.
    pub(crate) async fn stop(mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status().await;
            if tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await.is_err() {
                let _ = self.child.kill().await;
            }
        }
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// The last `n` lines of a log file.
pub(crate) fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(n)..].join("\n");
    if tail.is_empty() { "(empty)".into() } else { tail }
}

/// A `/proc/PID/status` field in bytes (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&text, field)
}

pub(crate) fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.split(':').next() == Some(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

/// utime + stime of a process, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    parse_stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

pub(crate) fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces: count fields after its closing parenthesis.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

pub(crate) fn cpu_ticks_sum(pids: &[u32]) -> Option<u64> {
    pids.iter().map(|p| cpu_ticks(*p)).sum()
}

/// Microseconds per clock tick (`getconf CLK_TCK`, 100 almost everywhere).
pub(crate) fn tick_us() -> f64 {
    static TICK: OnceLock<f64> = OnceLock::new();
    *TICK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .map_or(10_000.0, |t| 1e6 / t)
    })
}

/// Total size of the files under `dir`.
pub(crate) fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Runs a command to completion with a time limit; returns (success, stdout, stderr).
pub(crate) async fn output(
    mut cmd: Command,
    limit: Duration,
) -> anyhow::Result<(bool, String, String)> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let program = format!("{:?}", cmd.as_std().get_program());
    let child = cmd.spawn().with_context(|| format!("starting {program}"))?;
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .with_context(|| format!("{program} did not finish within {limit:?}"))??;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_parsers() {
        let status = "Name:\tx\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(10 * 1024 * 1024));
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(20 * 1024 * 1024));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
        let stat =
            "1234 (tokio runtime) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_stat_ticks(stat), Some(300));
        assert!(cpu_ticks(std::process::id()).is_some());
        assert!(rss_bytes(std::process::id()).is_some_and(|b| b > 0));
    }
}
