//! Statements per request: how many SQL statements tessera runs for each scenario's measured
//! request, and which, counted from the store's own statement log.
//!
//! A separate tessera process serves the database under test with
//! `TESSERA_LOG=warn,tessera::sql=debug`, so that the store logs one line per statement it runs
//! (target `tessera::sql`, the statement's text and never a value). Only statements that read or
//! write rows are counted: transaction control (`BEGIN`, `COMMIT`, savepoints) is not logged, and
//! a pool's connection check is a protocol message that is not a statement. One connection runs the scenario's setup, then
//! [`ITERATIONS`] times its `pre` requests and its measured request; the lines the log gained
//! while the measured request ran are that request's statements. Each step waits [`SETTLE`] before
//! the log is read, so that statements of the request before cannot land in the count; a
//! background task (the sweeper, a key-ring reload) can still add a line now and then, which is
//! why the report gives the median over the iterations and the range.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::load::{Fixtures, Plan, Stepper};
use super::stats;
use super::tessera::Tessera;

/// Measured requests per scenario.
pub(crate) const ITERATIONS: usize = 10;

/// How long the log is left to settle around each measured request.
const SETTLE: Duration = Duration::from_millis(20);

/// The log filter that makes the store log every statement and tessera little else.
pub(crate) const LOG_FILTER: &str = "warn,tessera::sql=debug";

/// One scenario's statements on one backend.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct StatementCount {
    pub(crate) scenario: String,
    /// `SQLite` or `PostgreSQL`.
    pub(crate) backend: String,
    /// Statements of each measured request, in order.
    pub(crate) per_request: Vec<usize>,
    /// The statements of the last measured request, each as its verb and tables.
    pub(crate) last: Vec<String>,
    pub(crate) error: Option<String>,
}

impl StatementCount {
    pub(crate) fn median(&self) -> Option<f64> {
        let counts: Vec<f64> = self.per_request.iter().map(|n| *n as f64).collect();
        stats::median(&counts)
    }

    pub(crate) fn range(&self) -> Option<(usize, usize)> {
        Some((*self.per_request.iter().min()?, *self.per_request.iter().max()?))
    }

    /// Statements of the last request that change rows (a `WITH` counts when one of its parts
    /// does).
    pub(crate) fn writes(&self) -> usize {
        let writes =
            |s: &str| ["INSERT", "UPDATE", "DELETE"].iter().any(|verb| s.starts_with(verb));
        self.last
            .iter()
            .filter(|s| match s.strip_prefix("WITH ") {
                Some(parts) => parts.split(", ").any(writes),
                None => writes(s),
            })
            .count()
    }
}

/// Starts a statement-logging tessera on `dir` and `database_url`, counts every scenario of
/// `plans` through it, and stops it.
pub(crate) async fn count_all(
    t: &Tessera,
    backend: &str,
    dir: &Path,
    database_url: Option<&str>,
    log: &Path,
    plans: &[(&str, &Plan)],
    fixtures: &Fixtures,
) -> anyhow::Result<Vec<StatementCount>> {
    let env = [("TESSERA_LOG", LOG_FILTER)];
    let (server, _) =
        t.start_with_env("tessera (statement log)", dir, database_url, log, &env).await?;
    let mut out = Vec::new();
    for (scenario, plan) in plans {
        let mut count = StatementCount {
            scenario: (*scenario).to_owned(),
            backend: backend.to_owned(),
            ..StatementCount::default()
        };
        if let Err(e) = count_one(server.addr, plan, fixtures, log, &mut count).await {
            count.error = Some(e);
        }
        out.push(count);
    }
    server.stop().await;
    Ok(out)
}

async fn count_one(
    addr: std::net::SocketAddr,
    plan: &Plan,
    fixtures: &Fixtures,
    log: &Path,
    count: &mut StatementCount,
) -> Result<(), String> {
    let mut stepper = Stepper::new(addr, plan, fixtures);
    for _ in 0..ITERATIONS {
        stepper.before_main().await?;
        tokio::time::sleep(SETTLE).await;
        let from = log_len(log);
        stepper.main().await?;
        tokio::time::sleep(SETTLE).await;
        let statements = statements_since(log, from);
        count.per_request.push(statements.len());
        count.last = statements;
    }
    Ok(())
}

fn log_len(log: &Path) -> u64 {
    std::fs::metadata(log).map_or(0, |m| m.len())
}

/// The statements the store logged after byte `from` of the log, described.
fn statements_since(log: &Path, from: u64) -> Vec<String> {
    let bytes = std::fs::read(log).unwrap_or_default();
    let start = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).lines().filter_map(statement_of_line).collect()
}

/// The statement a `tessera::sql` log line is about, described; `None` for any other line and
/// for transaction control.
pub(crate) fn statement_of_line(line: &str) -> Option<String> {
    if !line.contains("tessera::sql") {
        return None;
    }
    let text = quoted_field(line, "statement=").filter(|s| !s.trim().is_empty())?;
    let described = describe(&text);
    let control = ["BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"]
        .iter()
        .any(|verb| described.split(' ').next() == Some(verb));
    (!control).then_some(described)
}

/// The value of `name"…"` in a log line, with the escapes a Debug-formatted string carries.
fn quoted_field(line: &str, name: &str) -> Option<String> {
    let at = line.find(&format!("{name}\""))? + name.len() + 1;
    let mut out = String::new();
    let mut chars = line[at..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' | 't' | 'r' => out.push(' '),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// `SELECT credentials, grants`, `INSERT credentials`, `UPDATE grants`: the verb and the
/// tables a statement reads or writes, in the order it names them. A `WITH` statement is described
/// by the rows it changes, each part as its verb and table: `WITH UPDATE credentials, INSERT
/// credentials`.
pub(crate) fn describe(sql: &str) -> String {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let Some(verb) = words.first().map(|w| w.to_ascii_uppercase()) else {
        return String::new();
    };
    if verb == "WITH" {
        let name = |word: &str| {
            word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_').to_owned()
        };
        let mut parts: Vec<String> = Vec::new();
        for (i, word) in words.iter().enumerate() {
            let part = word.trim_start_matches('(').to_ascii_uppercase();
            let table = match part.as_str() {
                "UPDATE" => words.get(i + 1).map(|it| name(it)),
                "INSERT" | "DELETE" => words.get(i + 2).map(|it| name(it)),
                _ => None,
            };
            if let Some(table) = table.filter(|it| !it.is_empty()) {
                parts.push(format!("{part} {table}"));
            }
        }
        return if parts.is_empty() { verb } else { format!("WITH {}", parts.join(", ")) };
    }
    let mut tables: Vec<String> = Vec::new();
    for pair in words.windows(2) {
        let keyword = pair[0].to_ascii_uppercase();
        if matches!(keyword.as_str(), "FROM" | "JOIN" | "INTO" | "UPDATE") {
            let table = pair[1].trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_');
            if !table.is_empty()
                && !table.eq_ignore_ascii_case("SELECT")
                && !tables.iter().any(|t| t == table)
            {
                tables.push(table.to_owned());
            }
        }
    }
    if tables.is_empty() { verb } else { format!("{verb} {}", tables.join(", ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_become_statements() {
        let select = r#"2026-12-03T09:31:26.383144Z DEBUG tessera::sql: statement="SELECT c.digest, g.id AS g_id FROM credentials c\n LEFT JOIN grants g ON g.id = c.grant_id LEFT JOIN accounts a ON a.id = c.account_id WHERE c.digest = $1""#;
        assert_eq!(
            statement_of_line(select).as_deref(),
            Some("SELECT credentials, grants, accounts")
        );
        let commit = r#"2026-12-03T09:31:23.529429Z DEBUG tessera::sql: statement="COMMIT""#;
        assert_eq!(statement_of_line(commit), None, "transaction control is not counted");
        let other =
            r#"2026-12-03T09:31:23.529429Z DEBUG sqlx::query: summary="SELECT 1" db.statement="""#;
        assert_eq!(statement_of_line(other), None, "the driver's own log is not read");
        let insert = r#"x DEBUG tessera::sql: statement="INSERT INTO credentials (digest) VALUES ($1) ON CONFLICT (digest) DO NOTHING""#;
        assert_eq!(statement_of_line(insert).as_deref(), Some("INSERT credentials"));
        let nested = "UPDATE credentials SET revoked_at = $2 WHERE session_id IN (SELECT id FROM sessions WHERE account_id = $1)";
        assert_eq!(describe(nested), "UPDATE credentials, sessions");
        assert_eq!(statement_of_line("x INFO tessera::http: GET /readyz 200"), None);
        let with = "WITH consumed AS (UPDATE credentials SET consumed_at = $3 WHERE digest = $1 \
                    RETURNING digest), issued AS (INSERT INTO credentials (digest) SELECT * FROM \
                    (VALUES ($5)) AS v WHERE EXISTS (SELECT 1 FROM consumed)) SELECT digest FROM consumed";
        assert_eq!(describe(with), "WITH UPDATE credentials, INSERT credentials");
        let reads = StatementCount {
            last: vec![describe(with), "WITH SELECT".into(), "SELECT grants".into()],
            ..StatementCount::default()
        };
        assert_eq!(reads.writes(), 1, "a WITH statement that writes is one write");
        let count = StatementCount {
            per_request: vec![3, 2, 2],
            last: vec!["SELECT credentials".into(), "UPDATE grants".into()],
            ..StatementCount::default()
        };
        assert_eq!((count.median(), count.range(), count.writes()), (Some(2.0), Some((2, 3)), 1));
    }
}
