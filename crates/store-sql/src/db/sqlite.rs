//! Statements on SQLite through `rusqlite`, on the calling thread.
//!
//! **Reads** take a connection from an idle list (opening one when the list is empty), run, and
//! put it back; no connection is held across an `.await`, so at most one is busy per thread that
//! runs a statement. Readers are `query_only`. In WAL mode they never wait for the writer.
//!
//! **Writes** go through the one writer connection, behind an async lock, and **commit in
//! groups**. A write transaction is a savepoint inside the writer's open outer transaction (the
//! group). When it commits, it releases its savepoint; if other writers are waiting for the lock
//! it leaves the group open for them and waits, and the last writer in line commits the group and
//! answers everyone in it. So each caller returns once its own writes are committed, and a burst
//! of writers shares one commit (one WAL sync when the commit is synced). A writer whose work
//! fails rolls back to its savepoint: the others in its group are not touched. A group holds at
//! most [`MAX_GROUP`] transactions.
//!
//! **Sync levels.** The writer runs at `synchronous = NORMAL`: a commit is in the operating
//! system's hands when it returns (it survives a crash of the process). A *synced* transaction
//! (one that takes access away; see the store's `SYNCED_WRITES`) commits at `FULL`: the level can
//! only change outside a transaction, so a synced transaction first commits a group open at
//! `NORMAL`, then opens a new one at `FULL`, which later writers may join (they get the stronger
//! guarantee). With `sync_every_commit` the writer runs at `FULL` throughout.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::config::DbConfig;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{OwnedMutexGuard, oneshot};

use super::{Arg, DbError, Done, Output, Query, Role, Row, Value, Want};

/// The most transactions one group commit takes.
pub(crate) const MAX_GROUP: usize = 64;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 128;

/// The writer's page cache: 16 MiB (SQLite's default is 2 MiB). The writer is the one connection
/// whose cache outlives a commit (a reader's is dropped whenever another connection has written),
/// and with 2 MiB a push multicast's inserts spilled dirty pages to the log mid-transaction and
/// read back index pages they had just evicted. It is an upper bound, filled only as pages are
/// touched.
const WRITER_CACHE: &str = "PRAGMA cache_size = -16384";

/// A reader's page cache: 1 MiB (SQLite's default is 2 MiB). A reader's cache is dropped whenever
/// another connection has written, which on a server that issues tokens is many times a second,
/// and each idle reader keeps the memory of its cache however little of it is still valid: with
/// the default, the readers' caches were about 4.5 MiB of a server holding 10,000 push devices.
/// 1 MiB still holds the upper levels of the indexes a lookup walks through.
const READER_CACHE: &str = "PRAGMA cache_size = -1024";

/// Pages the write-ahead log grows to before a commit copies it back into the database (SQLite's
/// default is 1000, 4 MiB). A checkpoint copies each page once however often it was written
/// since the last, so rarer checkpoints copy the hot index pages fewer times; the log file keeps
/// the largest size it reached (about 40 MiB).
const WAL_AUTOCHECKPOINT: &str = "PRAGMA wal_autocheckpoint = 10000";

/// How long a connection waits for a lock another process holds (the admin command line on the
/// same file) before the statement fails.
const BUSY_TIMEOUT_MS: u32 = 5000;

/// A SQLite database: idle readers and the one writer.
pub(crate) struct Sqlite {
    path: PathBuf,
    mode: Mode,
    readers: Mutex<Vec<Connection>>,
    max_idle: usize,
    writer: Arc<tokio::sync::Mutex<Writer>>,
    /// Writers waiting for the writer lock for a new transaction (not those waiting to commit
    /// their group): while there are any, a committing writer leaves its group open for them.
    waiting: Arc<AtomicUsize>,
    every_commit: bool,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite").field("path", &self.path).finish_non_exhaustive()
    }
}

/// The writer connection and its open group.
pub(crate) struct Writer {
    conn: Option<Connection>,
    group: Option<Group>,
    /// Counts committed (or failed) groups, so that a writer waiting for its group can tell
    /// whether it is still open.
    generation: u64,
    synced: Synced,
}

/// What ran at `FULL` on a writer at `NORMAL`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Synced {
    /// Groups raised to `FULL`.
    pub(crate) groups: u64,
    /// Synced transactions, each in a group raised to `FULL`.
    pub(crate) transactions: u64,
}

/// An open outer transaction and the writers whose work it holds, waiting for its commit.
struct Group {
    synced: bool,
    members: Vec<oneshot::Sender<Result<(), String>>>,
}

/// How a database file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Read and written, created when missing.
    Create,
    /// Read and written; it must exist.
    Existing,
    /// Every write fails (a replica, a read-only file).
    ReadOnly,
}

impl Sqlite {
    /// Opens the writer (switching the file to WAL) and prepares the reader list.
    pub(crate) fn open(
        path: &Path,
        mode: Mode,
        readers: usize,
        every_commit: bool,
    ) -> Result<Sqlite, DbError> {
        let level =
            if every_commit { "PRAGMA synchronous = FULL" } else { "PRAGMA synchronous = NORMAL" };
        let writer = match mode {
            Mode::ReadOnly => open_connection(path, mode, &[level])?,
            _ => open_connection(
                path,
                mode,
                &["PRAGMA journal_mode = WAL", level, WRITER_CACHE, WAL_AUTOCHECKPOINT],
            )?,
        };
        Ok(Sqlite {
            path: path.to_owned(),
            mode,
            readers: Mutex::new(Vec::new()),
            max_idle: readers.max(1),
            writer: Arc::new(tokio::sync::Mutex::new(Writer {
                conn: Some(writer),
                group: None,
                generation: 0,
                synced: Synced::default(),
            })),
            waiting: Arc::new(AtomicUsize::new(0)),
            every_commit,
        })
    }

    /// Runs one statement: a read on an idle reader, a write as its own transaction.
    pub(crate) async fn run(
        self: &Arc<Self>,
        role: Role,
        query: &Query,
        want: Want,
    ) -> Result<Output, DbError> {
        match role {
            Role::Read => self.read(|conn| run_on(conn, query, want)),
            Role::Write => {
                let mut tx = self.begin(false).await?;
                let out = tx.run(query, want)?;
                tx.commit().await?;
                Ok(out)
            }
        }
    }

    /// Runs `f` on an idle reader, on this thread.
    fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R, DbError>) -> Result<R, DbError> {
        let idle = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                open_connection(&self.path, self.mode, &["PRAGMA query_only = ON", READER_CACHE])?
            }
        };
        let out = f(&conn);
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if readers.len() < self.max_idle {
            readers.push(conn);
        }
        out
    }

    /// Opens a write transaction: waits for the writer, joins its open group or opens one, and
    /// sets a savepoint.
    pub(crate) async fn begin(self: &Arc<Self>, synced: bool) -> Result<SqliteTx, DbError> {
        let waiting = Waiting::new(self.clone());
        let mut writer = self.writer.clone().lock_owned().await;
        waiting.acquired();
        if synced && !self.every_commit && writer.group.as_ref().is_some_and(|g| !g.synced) {
            writer.commit_group(self.every_commit);
        }
        let conn = writer.conn()?;
        if writer.group.is_none() {
            let raise = synced && !self.every_commit;
            if raise {
                conn.execute_batch("PRAGMA synchronous = FULL")?;
            }
            if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
                if raise {
                    let _ = conn.execute_batch("PRAGMA synchronous = NORMAL");
                }
                return Err(e.into());
            }
            if raise {
                writer.synced.groups += 1;
            }
            writer.group = Some(Group { synced: synced || self.every_commit, members: Vec::new() });
        }
        writer.conn()?.execute_batch("SAVEPOINT tx")?;
        if synced && !self.every_commit {
            writer.synced.transactions += 1;
        }
        Ok(SqliteTx { sqlite: self.clone(), writer: Some(writer) })
    }

    /// Runs `f` on the writer connection outside any group (migrations, tests).
    pub(crate) async fn with_writer<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        let mut writer = self.writer.lock().await;
        writer.commit_group(self.every_commit);
        let conn = writer.conn.as_mut().ok_or_else(closed)?;
        f(conn)
    }

    /// How many groups were committed (or failed) so far.
    #[cfg(test)]
    pub(crate) async fn groups(&self) -> u64 {
        self.writer.lock().await.generation
    }

    /// What ran at `FULL` so far.
    #[cfg(test)]
    pub(crate) async fn synced(&self) -> Synced {
        self.writer.lock().await.synced
    }

    /// Commits an open group and closes every connection; statements after this fail.
    pub(crate) async fn close(&self) {
        let mut writer = self.writer.lock().await;
        writer.commit_group(self.every_commit);
        writer.conn = None;
        self.readers.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Commits the group left open by writers that went away before committing it (a cancelled
    /// request), from a task of its own.
    fn flush_later(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let writer = self.writer.clone();
        let every_commit = self.every_commit;
        runtime.spawn(async move {
            writer.lock().await.commit_group(every_commit);
        });
    }
}

impl Writer {
    fn conn(&self) -> Result<&Connection, DbError> {
        self.conn.as_ref().ok_or_else(closed)
    }

    /// Commits the open group, if any, and answers its members.
    fn commit_group(&mut self, every_commit: bool) {
        let Some(group) = self.group.take() else { return };
        self.generation += 1;
        let Some(conn) = &self.conn else {
            for member in group.members {
                let _ = member.send(Err("the database was closed".to_owned()));
            }
            return;
        };
        let result = conn.execute_batch("COMMIT").map_err(|e| describe(&e));
        if result.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        if group.synced && !every_commit {
            let _ = conn.execute_batch("PRAGMA synchronous = NORMAL");
        }
        if let Err(e) = &result {
            tracing::error!(error = %e, members = group.members.len(), "sqlite group commit failed");
        }
        for member in group.members {
            let _ = member.send(result.clone());
        }
    }
}

/// Counts a writer waiting for the lock while it waits; one that gives up waiting (a cancelled
/// request) and leaves a group open with nobody else in line has the group committed.
struct Waiting {
    sqlite: Arc<Sqlite>,
    acquired: bool,
}

impl Waiting {
    fn new(sqlite: Arc<Sqlite>) -> Waiting {
        sqlite.waiting.fetch_add(1, Ordering::AcqRel);
        Waiting { sqlite, acquired: false }
    }

    fn acquired(mut self) {
        self.acquired = true;
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let before = self.sqlite.waiting.fetch_sub(1, Ordering::AcqRel);
        if before == 1 && !self.acquired {
            self.sqlite.flush_later();
        }
    }
}

/// A write transaction: a savepoint in the writer's group, holding the writer until it commits
/// or rolls back. Dropped without either, it rolls back.
pub(crate) struct SqliteTx {
    sqlite: Arc<Sqlite>,
    writer: Option<OwnedMutexGuard<Writer>>,
}

impl std::fmt::Debug for SqliteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTx").finish_non_exhaustive()
    }
}

impl SqliteTx {
    pub(crate) fn run(&mut self, query: &Query, want: Want) -> Result<Output, DbError> {
        let writer = self.writer.as_ref().ok_or_else(closed)?;
        run_on(writer.conn()?, query, want)
    }

    /// Releases the savepoint and waits until the group holding it is committed.
    pub(crate) async fn commit(mut self) -> Result<(), DbError> {
        let Some(mut writer) = self.writer.take() else { return Err(closed()) };
        if let Err(e) = writer.conn()?.execute_batch("RELEASE tx") {
            self.writer = Some(writer);
            self.undo();
            return Err(e.into());
        }
        let every_commit = self.sqlite.every_commit;
        let others_waiting = self.sqlite.waiting.load(Ordering::Acquire) > 0;
        let group = writer.group.as_mut().ok_or_else(closed)?;
        if !others_waiting || group.members.len() + 1 >= MAX_GROUP {
            let (answer, result) = oneshot::channel();
            group.members.push(answer);
            writer.commit_group(every_commit);
            drop(writer);
            return wait(result).await;
        }
        let (answer, mut result) = oneshot::channel();
        group.members.push(answer);
        let generation = writer.generation;
        drop(writer);
        // The writers in line commit the group; should they all go away, this one commits it
        // when its own turn at the lock comes.
        let pending = Pending { sqlite: self.sqlite.clone(), done: false };
        let answered = tokio::select! {
            biased;
            outcome = &mut result => Some(outcome),
            mut writer = self.sqlite.writer.clone().lock_owned() => {
                if writer.generation == generation {
                    writer.commit_group(every_commit);
                }
                None
            }
        };
        pending.finish();
        match answered {
            Some(outcome) => answered_with(outcome),
            None => wait(result).await,
        }
    }

    pub(crate) fn rollback(mut self) -> Result<(), DbError> {
        self.undo();
        Ok(())
    }

    /// Rolls back to the savepoint and, with nobody waiting, commits what the group holds.
    fn undo(&mut self) {
        let Some(mut writer) = self.writer.take() else { return };
        if let Some(conn) = &writer.conn
            && conn.execute_batch("ROLLBACK TO tx; RELEASE tx").is_err()
            && !conn.is_autocommit()
        {
            // The savepoint is gone with the whole transaction (SQLite rolled back on its own
            // after an I/O or full-disk error); the group's members are answered with it.
            let _ = conn.execute_batch("ROLLBACK");
        }
        if self.sqlite.waiting.load(Ordering::Acquire) == 0 {
            writer.commit_group(self.sqlite.every_commit);
        }
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        self.undo();
    }
}

/// A writer waiting for its group's commit; dropped before it (a cancelled request), it makes
/// sure the group is committed anyway.
struct Pending {
    sqlite: Arc<Sqlite>,
    done: bool,
}

impl Pending {
    fn finish(mut self) {
        self.done = true;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            self.sqlite.flush_later();
        }
    }
}

async fn wait(result: oneshot::Receiver<Result<(), String>>) -> Result<(), DbError> {
    answered_with(result.await)
}

/// A group's answer to one of its members.
fn answered_with(
    outcome: Result<Result<(), String>, oneshot::error::RecvError>,
) -> Result<(), DbError> {
    outcome
        .map_err(|_| DbError::GroupCommit("the writer stopped".to_owned()))?
        .map_err(DbError::GroupCommit)
}

fn closed() -> DbError {
    DbError::GroupCommit("the database was closed".to_owned())
}

/// Opens a connection with the settings every connection gets, then `extra`.
fn open_connection(path: &Path, mode: Mode, extra: &[&str]) -> Result<Connection, DbError> {
    let flags = match mode {
        Mode::Create => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        Mode::Existing => OpenFlags::SQLITE_OPEN_READ_WRITE,
        Mode::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_millis(u64::from(BUSY_TIMEOUT_MS)))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // The query planner stability guarantee: a plan never depends on the values bound. Without
    // it SQLite marks a parameter whose value might change the plan (a comparison near a partial
    // index's condition, a `LIMIT`) and prepares the whole statement again on the first step
    // after every new binding, which made the cached token lookup parse and plan its statement
    // on every request.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.execute_batch("PRAGMA foreign_keys = ON")?;
    // A write transaction of the group is a savepoint inside the group's transaction, and SQLite
    // copies every page a savepoint changes first into a sub-journal. In a file (the default)
    // each copy is a system call: a push multicast of 1000 messages spent a third of the
    // server's time writing it. In memory it lives only until the savepoint is released.
    conn.execute_batch("PRAGMA temp_store = MEMORY")?;
    for pragma in extra {
        // `journal_mode` answers with a row; read and drop it.
        conn.query_row(pragma, [], |_| Ok(())).or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(()),
            e => Err(e),
        })?;
    }
    Ok(conn)
}

/// How many times an idle reader's cached statement for `sql` was prepared again since it was
/// first prepared (after a schema change, or a binding that changed its plan).
#[cfg(test)]
pub(crate) fn reprepared(sqlite: &Sqlite, sql: &str) -> i32 {
    sqlite
        .read(|conn| {
            let statement = conn.prepare_cached(&placeholders(sql))?;
            Ok(statement.get_status(rusqlite::StatementStatus::RePrepare))
        })
        .expect("an idle reader")
}

/// `$N` placeholders as SQLite's `?N`, which binds by number without looking names up.
pub(crate) fn placeholders(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Runs `query` on `conn` through the connection's statement cache.
fn run_on(conn: &Connection, query: &Query, want: Want) -> Result<Output, DbError> {
    let sql = placeholders(query.sql());
    let mut statement = conn.prepare_cached(&sql)?;
    let expected = statement.parameter_count();
    if expected != query.args().len() {
        return Err(DbError::Arity { expected, bound: query.args().len() });
    }
    for (i, arg) in query.args().iter().enumerate() {
        match arg {
            Arg::Int(value) => statement.raw_bind_parameter(i + 1, value)?,
            Arg::Text(value) => statement.raw_bind_parameter(i + 1, value)?,
        }
    }
    if want == Want::Execute {
        let mut rows = statement.raw_query();
        while rows.next()?.is_some() {}
        drop(rows);
        return Ok(Output::Done(Done { rows: conn.changes() }));
    }
    let names: Arc<[String]> = statement.column_names().map(str::to_owned).collect();
    let columns = names.len();
    let mut rows = statement.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(columns);
        for i in 0..columns {
            values.push(match row.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(i) => Value::Int(i),
                ValueRef::Real(r) => Value::Real(r),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            });
        }
        out.push(Row::Sqlite { names: names.clone(), values });
        if want == Want::Optional {
            break;
        }
    }
    Ok(Output::Rows(out))
}

/// A description of a SQLite error; SQLite's messages name tables and columns, never values.
pub(crate) fn describe(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => format!(
            "sqlite error (code {}): {}",
            code.extended_code,
            message.as_deref().unwrap_or("no message")
        ),
        rusqlite::Error::FromSqlConversionFailure(index, ..)
        | rusqlite::Error::InvalidColumnType(index, ..) => format!("cannot decode column {index}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::query;

    fn open(dir: &Path) -> Arc<Sqlite> {
        let sqlite = Sqlite::open(&dir.join("group.db"), Mode::Create, 2, false).expect("open");
        let conn = open_connection(&dir.join("group.db"), Mode::Create, &[]).expect("connection");
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)").expect("table");
        Arc::new(sqlite)
    }

    fn insert(key: &str) -> Query {
        query("INSERT INTO t (k) VALUES ($1)").bind(key)
    }

    /// A writer holding the writer with row `a` written, and `second` spawned, waiting in line.
    async fn first_holding_a_and_second_in_line<F>(
        sqlite: &Arc<Sqlite>,
        second: impl FnOnce(Arc<Sqlite>) -> F,
    ) -> (SqliteTx, tokio::task::JoinHandle<F::Output>)
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let mut first = sqlite.begin(false).await.expect("begin");
        first.run(&insert("a"), Want::Execute).expect("insert a");
        let second = tokio::spawn(second(sqlite.clone()));
        tokio::task::yield_now().await;
        assert_eq!(sqlite.waiting.load(Ordering::Acquire), 1, "the second writer waits in line");
        (first, second)
    }

    fn keys(sqlite: &Sqlite) -> Vec<String> {
        sqlite
            .read(|conn| run_on(conn, &query("SELECT k FROM t ORDER BY k"), Want::All))
            .map(|out| match out {
                Output::Rows(rows) => {
                    rows.iter().map(|row| row.try_get::<String>("k").expect("k")).collect()
                }
                Output::Done(_) => Vec::new(),
            })
            .expect("read")
    }

    /// A writer that commits while another waits for the writer leaves the group open; the one
    /// waiting commits both, and both are answered by that one commit.
    #[tokio::test]
    async fn a_writer_in_line_commits_the_group_for_both() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let sqlite = open(dir.path());
        let before = sqlite.groups().await;
        let (first, second) = first_holding_a_and_second_in_line(&sqlite, |sqlite| async move {
            let mut tx = sqlite.begin(false).await?;
            tx.run(&insert("b"), Want::Execute)?;
            tx.commit().await
        })
        .await;
        first.commit().await.expect("the first is committed with the group");
        second.await.expect("task").expect("the second is committed");
        assert_eq!(sqlite.groups().await, before + 1, "one commit for both");
        assert_eq!(keys(&sqlite), ["a", "b"]);
    }

    /// A transaction that fails in a group rolls back its own work only.
    #[tokio::test]
    async fn a_failed_transaction_leaves_its_group_intact() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let sqlite = open(dir.path());
        let (first, second) = first_holding_a_and_second_in_line(&sqlite, |sqlite| async move {
            let mut tx = sqlite.begin(false).await?;
            tx.run(&insert("c"), Want::Execute)?;
            // A duplicate of the first writer's uncommitted row: it fails, and so does this
            // transaction, which is dropped (rolled back to its savepoint).
            tx.run(&insert("a"), Want::Execute).map(|_| ())
        })
        .await;
        first.commit().await.expect("the first is committed");
        let failed = second.await.expect("task").expect_err("the duplicate fails");
        assert!(crate::error::conflict_name(&failed).is_some(), "{failed:?}");
        assert_eq!(keys(&sqlite), ["a"], "the failed transaction's other row is gone");
    }

    /// A writer in line that goes away before its turn (a cancelled request) is no longer counted,
    /// and the group is committed without it.
    #[tokio::test]
    async fn a_group_left_for_writers_that_went_away_is_committed() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let sqlite = open(dir.path());
        let (first, waiter) = first_holding_a_and_second_in_line(&sqlite, |sqlite| async move {
            sqlite.begin(false).await.map(drop)
        })
        .await;
        waiter.abort();
        assert!(waiter.await.expect_err("aborted").is_cancelled());
        assert_eq!(sqlite.waiting.load(Ordering::Acquire), 0, "the cancelled writer left the line");
        first.commit().await.expect("committed although nobody else was left");
        assert_eq!(keys(&sqlite), ["a"]);
        assert!(sqlite.writer.lock().await.group.is_none(), "no group is left open");
    }

    /// Concurrent synced writers each commit at FULL; the writer goes back to NORMAL after.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_synced_writers_commits_each_at_full() {
        const N: usize = 64;
        let dir = tempfile::tempdir().expect("temporary directory");
        let sqlite = open(dir.path());
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..N {
            let sqlite = sqlite.clone();
            tasks.spawn(async move {
                let mut tx = sqlite.begin(i % 2 == 0).await?;
                tx.run(&insert(&format!("k{i:02}")), Want::Execute)?;
                tx.commit().await
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("task").expect("committed");
        }
        let synced = sqlite.synced().await;
        assert_eq!(synced.transactions, N as u64 / 2);
        assert!((1..=N as u64 / 2).contains(&synced.groups), "{synced:?}");
        assert_eq!(keys(&sqlite).len(), N);
        let mut tx = sqlite.begin(false).await.expect("begin");
        let Output::Rows(rows) =
            tx.run(&query("PRAGMA synchronous"), Want::Optional).expect("pragma")
        else {
            panic!("rows")
        };
        assert_eq!(rows[0].try_get::<i64>("synchronous").expect("level"), 1, "back at NORMAL");
        tx.commit().await.expect("commit");
    }

    /// The writer's settings that the push and token paths were measured with.
    #[tokio::test]
    async fn the_writer_journals_savepoints_in_memory_with_its_larger_cache_and_log() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let sqlite = open(dir.path());
        let mut tx = sqlite.begin(false).await.expect("begin");
        let mut setting = |name: &str| -> i64 {
            let Output::Rows(rows) = tx
                .run(&crate::db::query_built(format!("PRAGMA {name}")), Want::Optional)
                .expect(name)
            else {
                panic!("rows")
            };
            rows[0].try_get::<i64>(name).expect(name)
        };
        assert_eq!(setting("temp_store"), 2, "MEMORY");
        assert_eq!(setting("cache_size"), -16384);
        assert_eq!(setting("wal_autocheckpoint"), 10000);
        tx.commit().await.expect("commit");
        let readers = sqlite
            .read(|conn| Ok(conn.query_row("PRAGMA cache_size", [], |row| row.get::<_, i64>(0))?));
        assert_eq!(readers.expect("a reader"), -1024, "a reader keeps a smaller cache");
    }

    #[test]
    fn numbered_placeholders_become_sqlite_numbers() {
        assert_eq!(placeholders("SELECT 1"), "SELECT 1");
        assert_eq!(
            placeholders("UPDATE t SET a = $3 WHERE b = $1 AND c = $12"),
            "UPDATE t SET a = ?3 WHERE b = ?1 AND c = ?12"
        );
        assert_eq!(placeholders("SELECT '$' || $1"), "SELECT '$' || ?1");
    }
}
