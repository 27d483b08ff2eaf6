//! What machine and which versions: /proc, and the tools' own `--version`.

use std::time::Duration;

use tokio::process::Command;

use super::procs;
use super::report::Machine;

pub(crate) fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let (model, processors) = parse_cpuinfo(&cpuinfo);
    let cores = if processors > 0 {
        processors
    } else {
        std::thread::available_parallelism().map_or(1, usize::from)
    };
    Machine {
        cpu_model: model.unwrap_or_else(|| "unknown CPU".into()),
        cores,
        memory_bytes: procs::parse_status_kib(&meminfo, "MemTotal").unwrap_or(0),
    }
}

/// (first `model name`, number of `processor` entries).
pub(crate) fn parse_cpuinfo(text: &str) -> (Option<String>, usize) {
    let field = |line: &str, name: &str| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == name).then(|| v.trim().to_owned())
    };
    let model = text.lines().find_map(|l| field(l, "model name"));
    let processors = text.lines().filter(|l| field(l, "processor").is_some()).count();
    (model, processors)
}

/// The first line a `--version`-like command prints, or `None`.
pub(crate) async fn version_of(program: &str, args: &[&str]) -> Option<String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let (ok, out, err) = procs::output(cmd, Duration::from_secs(30)).await.ok()?;
    let text = if out.trim().is_empty() { err } else { out };
    ok.then(|| text.lines().next().unwrap_or("").trim().to_owned()).filter(|v| !v.is_empty())
}

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn utc_now() -> String {
    #[allow(
        clippy::disallowed_methods,
        reason = "the report's date is wall-clock time by definition"
    )]
    let now = std::time::SystemTime::now();
    let secs = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format_utc(secs)
}

pub(crate) fn format_utc(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_704_067_199), "2023-12-31T23:59:59Z");
        assert_eq!(format_utc(1_777_777_777), "2026-05-03T03:09:37Z");
    }

    #[test]
    fn cpuinfo() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: x\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(parse_cpuinfo(text), (Some("AMD EPYC 7B13".into()), 2));
        assert_eq!(parse_cpuinfo(""), (None, 0));
    }
}
