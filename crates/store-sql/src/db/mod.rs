//! One small query API over each backend's native driver: `rusqlite` for SQLite, sqlx's
//! PostgreSQL driver for PostgreSQL.
//!
//! The store's modules write each statement once, with `$N` placeholders, and run it through
//! [`query`]: `query(SQL).bind(a).bind(b).fetch_optional(&store.read)`. What runs it:
//!
//! - **SQLite** ([`sqlite`]): the statement runs on the calling thread, on a connection taken from
//!   an idle list and put back at once, through a cache of prepared statements. An indexed read
//!   takes microseconds, less than any hand-off to another thread would. Every write goes through
//!   the one writer connection, which commits concurrent writers' transactions together (group
//!   commit): each caller returns when its own transaction is committed.
//! - **PostgreSQL** ([`postgres`]): a sqlx `PgPool`; each statement is prepared once per
//!   connection and kept in the connection's statement cache.
//!
//! Every statement is logged at `debug` under the target [`STATEMENT_LOG`] (its text, never a
//! bound value), which `cargo xtask bench --only statements` counts.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::postgres::PgRow;
use tessera_store::{Answer, CredentialKind};

/// The `tracing` target of the one debug line per statement.
pub const STATEMENT_LOG: &str = "tessera::sql";

/// A value bound to a placeholder. Each carries its type, so that a `NULL` is typed too (the
/// PostgreSQL driver declares every parameter's type when it prepares the statement).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
}

/// What may be bound: integers and text, optional or not.
pub(crate) trait IntoArg {
    fn into_arg(self) -> Arg;
}

impl IntoArg for i64 {
    fn into_arg(self) -> Arg {
        Arg::Int(Some(self))
    }
}

impl IntoArg for Option<i64> {
    fn into_arg(self) -> Arg {
        Arg::Int(self)
    }
}

impl IntoArg for String {
    fn into_arg(self) -> Arg {
        Arg::Text(Some(self))
    }
}

impl IntoArg for Option<String> {
    fn into_arg(self) -> Arg {
        Arg::Text(self)
    }
}

impl IntoArg for &str {
    fn into_arg(self) -> Arg {
        Arg::Text(Some(self.to_owned()))
    }
}

impl IntoArg for &String {
    fn into_arg(self) -> Arg {
        Arg::Text(Some(self.clone()))
    }
}

impl IntoArg for Option<&str> {
    fn into_arg(self) -> Arg {
        Arg::Text(self.map(str::to_owned))
    }
}

impl IntoArg for &Option<String> {
    fn into_arg(self) -> Arg {
        Arg::Text(self.clone())
    }
}

/// A statement and its bound values.
#[derive(Debug, Clone)]
#[must_use = "a query does nothing until it is run"]
pub(crate) struct Query {
    sql: Cow<'static, str>,
    args: Vec<Arg>,
    /// What it may change among the answer tables, when its text alone would say too much.
    touches: Option<Tables>,
}

/// A statement written in the source.
pub(crate) fn query(sql: &'static str) -> Query {
    Query { sql: Cow::Borrowed(sql), args: Vec::new(), touches: None }
}

/// A statement assembled at run time (a list of placeholders of varying length); it must hold no
/// value, only placeholders.
pub(crate) fn query_built(sql: String) -> Query {
    Query { sql: Cow::Owned(sql), args: Vec::new(), touches: None }
}

/// What a committed write may have changed among the rows kept answers are read from
/// ([`tessera_store::Store::changes`]): a set of the tables `find_live_token`, `get_client`,
/// `find_signed_in`, the projects' `get` and the grants' `list_by_account` read. A kind of answer
/// ends when a write touched a table it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Tables(u8);

impl Tables {
    pub(crate) const NONE: Tables = Tables(0);
    pub(crate) const ACCOUNTS: Tables = Tables(1);
    pub(crate) const CLIENTS: Tables = Tables(1 << 1);
    pub(crate) const GRANTS: Tables = Tables(1 << 2);
    pub(crate) const SESSIONS: Tables = Tables(1 << 3);
    /// Rows of `credentials` of any kind, a session's cookie included.
    pub(crate) const CREDENTIALS: Tables = Tables(1 << 4);
    /// Rows of `credentials` that are not a session's cookie (a statement that names its kind):
    /// these end token answers but no signed-in session.
    pub(crate) const TOKENS: Tables = Tables(1 << 5);
    pub(crate) const PROJECTS: Tables = Tables(1 << 6);
    /// How many there are, one change count each.
    const COUNT: usize = 7;
    pub(crate) const ALL: Tables = Tables((1 << Tables::COUNT) - 1);

    /// The rows of `credentials` of `kind`.
    pub(crate) fn credentials_of(kind: CredentialKind) -> Tables {
        if kind == CredentialKind::Session { Tables::CREDENTIALS } else { Tables::TOKENS }
    }

    /// What the answers of kind `of` are read from.
    fn read_by(of: Answer) -> Tables {
        match of {
            Answer::Token => Tables::ACCOUNTS
                .union(Tables::CLIENTS)
                .union(Tables::GRANTS)
                .union(Tables::CREDENTIALS)
                .union(Tables::TOKENS),
            Answer::Client => Tables::CLIENTS,
            Answer::Session => Tables::ACCOUNTS.union(Tables::SESSIONS).union(Tables::CREDENTIALS),
            Answer::Project => Tables::PROJECTS,
            Answer::Grants => Tables::GRANTS,
        }
    }

    pub(crate) const fn union(self, other: Tables) -> Tables {
        Tables(self.0 | other.0)
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn contains(self, index: usize) -> bool {
        self.0 & (1 << index) != 0
    }

    /// The table a statement's text names: an `UPDATE` or `DELETE` of one of them, or an upsert
    /// into one (it may update); a read or a plain insert touches none (an insert adds a row
    /// without changing one: what was answered before stays true). Any other statement (a `WITH`,
    /// a shape not foreseen) touches them all, to be safe. `credentials` is read as every kind;
    /// a statement that changes only some kinds says so with [`Query::touching`].
    fn named_by(sql: &str) -> Tables {
        let sql = sql.trim_start();
        let starts =
            |word: &str| sql.get(..word.len()).is_some_and(|it| it.eq_ignore_ascii_case(word));
        let table = if starts("SELECT ") {
            return Tables::NONE;
        } else if starts("INSERT INTO ") {
            if !sql.to_ascii_uppercase().contains(" DO UPDATE ") {
                return Tables::NONE;
            }
            &sql["INSERT INTO ".len()..]
        } else if starts("INSERT ") {
            // `INSERT OR REPLACE`, `INSERT OR IGNORE`: a shape not foreseen.
            return Tables::ALL;
        } else if starts("UPDATE ") {
            &sql["UPDATE ".len()..]
        } else if starts("DELETE FROM ") {
            &sql["DELETE FROM ".len()..]
        } else {
            return Tables::ALL;
        };
        let name =
            table.trim_start().split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next();
        match name.map(str::to_ascii_lowercase).as_deref() {
            Some("accounts") => Tables::ACCOUNTS,
            Some("clients") => Tables::CLIENTS,
            Some("grants") => Tables::GRANTS,
            Some("sessions") => Tables::SESSIONS,
            Some("credentials") => Tables::CREDENTIALS,
            Some("projects") => Tables::PROJECTS,
            _ => Tables::NONE,
        }
    }
}

/// Counts, per table of [`Tables`], the committed writes that may have changed an answer;
/// shared by a store's handles and transactions.
#[derive(Debug, Default)]
pub(crate) struct Changes([AtomicU64; Tables::COUNT]);

impl Changes {
    /// The count for answers of kind `of`: the sum of the counts of the tables they are read
    /// from. Each count only grows, so the sum grows with every write counted in one of them.
    pub(crate) fn count(&self, of: Answer) -> u64 {
        let read = Tables::read_by(of);
        (0..Tables::COUNT)
            .filter(|&i| read.contains(i))
            .map(|i| self.0[i].load(Ordering::Acquire))
            .fold(0, u64::wrapping_add)
    }

    /// Counts a committed write that touched `tables`.
    pub(crate) fn committed(&self, tables: Tables) {
        for i in (0..Tables::COUNT).filter(|&i| tables.contains(i)) {
            self.0[i].fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// What a statement that returns no rows did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Done {
    rows: u64,
}

impl Done {
    pub(crate) fn rows_affected(&self) -> u64 {
        self.rows
    }
}

/// What a statement is run for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// Rows changed; rows it returns are read and dropped.
    Execute,
    /// At most the first row.
    Optional,
    /// Every row.
    All,
}

/// What running a statement gave.
#[derive(Debug)]
pub(crate) enum Output {
    Done(Done),
    Rows(Vec<Row>),
}

impl Query {
    /// Binds the next placeholder (`$1`, then `$2`, …).
    pub(crate) fn bind(mut self, value: impl IntoArg) -> Query {
        self.args.push(value.into_arg());
        self
    }

    /// Says what the statement may change among the answer tables, instead of what its text
    /// names ([`Tables::named_by`]): a `WITH` that consumes one credential of a known kind, say.
    pub(crate) fn touching(mut self, tables: Tables) -> Query {
        self.touches = Some(tables);
        self
    }

    pub(crate) fn sql(&self) -> &str {
        &self.sql
    }

    pub(crate) fn args(&self) -> &[Arg] {
        &self.args
    }

    /// Runs a statement for its effect.
    pub(crate) async fn execute<'e>(self, on: impl Into<Exec<'e>>) -> Result<Done, DbError> {
        match self.run(on.into(), Want::Execute).await? {
            Output::Done(done) => Ok(done),
            Output::Rows(_) => Ok(Done { rows: 0 }),
        }
    }

    /// The first row, if any.
    pub(crate) async fn fetch_optional<'e>(
        self,
        on: impl Into<Exec<'e>>,
    ) -> Result<Option<Row>, DbError> {
        Ok(self.fetch(on.into(), Want::Optional).await?.into_iter().next())
    }

    /// The first row; `DbError::NoRow` when there is none.
    pub(crate) async fn fetch_one<'e>(self, on: impl Into<Exec<'e>>) -> Result<Row, DbError> {
        self.fetch_optional(on).await?.ok_or(DbError::NoRow)
    }

    /// Every row.
    pub(crate) async fn fetch_all<'e>(self, on: impl Into<Exec<'e>>) -> Result<Vec<Row>, DbError> {
        self.fetch(on.into(), Want::All).await
    }

    async fn fetch(self, on: Exec<'_>, want: Want) -> Result<Vec<Row>, DbError> {
        match self.run(on, want).await? {
            Output::Rows(rows) => Ok(rows),
            Output::Done(_) => Ok(Vec::new()),
        }
    }

    async fn run(self, on: Exec<'_>, want: Want) -> Result<Output, DbError> {
        tracing::debug!(target: STATEMENT_LOG, statement = ?self.sql);
        let touches = self.touches.unwrap_or_else(|| Tables::named_by(&self.sql));
        match on {
            Exec::Db(db) => {
                let out = match db {
                    Db::Sqlite(sqlite, role, _) => sqlite.run(*role, &self, want).await,
                    Db::Postgres(pool, _) => postgres::run(pool, self, want).await,
                };
                // A statement on a handle is its own transaction, committed when it returns. One
                // that failed may still have committed (a connection lost after the commit): it
                // is counted too.
                if !touches.is_empty() && out.as_ref().map_or(true, Output::changed_rows) {
                    db.changes().committed(touches);
                }
                out
            }
            Exec::Tx(tx) => {
                let out = match &mut tx.inner {
                    TxInner::Sqlite(inner) => inner.run(&self, want)?,
                    TxInner::Postgres(inner) => postgres::run(&mut ***inner, self, want).await?,
                };
                // Counted when the transaction commits.
                if out.changed_rows() {
                    tx.changed = tx.changed.union(touches);
                }
                Ok(out)
            }
        }
    }
}

impl Output {
    /// Whether the statement changed (or, with `RETURNING`, returned) a row.
    fn changed_rows(&self) -> bool {
        match self {
            Output::Done(done) => done.rows > 0,
            Output::Rows(rows) => !rows.is_empty(),
        }
    }
}

/// Which connections of a SQLite database a handle runs its statements on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The idle readers (`query_only`), on the calling thread.
    Read,
    /// The one writer, each statement its own transaction, committed with others.
    Write,
}

/// A database handle: a SQLite database in one role, or the PostgreSQL pool. Cloning shares the
/// connections.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    Sqlite(Arc<sqlite::Sqlite>, Role, Arc<Changes>),
    Postgres(sqlx::PgPool, Arc<Changes>),
}

impl Db {
    /// Opens a write transaction: on SQLite it joins the writer's open group (see
    /// [`sqlite::Sqlite::begin`]); `synced` makes its commit reach the disk before it returns.
    pub(crate) async fn begin(&self, synced: bool) -> Result<Tx, DbError> {
        let inner = match self {
            Db::Sqlite(sqlite, ..) => TxInner::Sqlite(sqlite.begin(synced).await?),
            Db::Postgres(pool, _) => TxInner::Postgres(Box::new(pool.begin().await?)),
        };
        Ok(Tx { inner, changes: self.changes().clone(), changed: Tables::NONE })
    }

    /// The count of committed writes that may have changed an answer, shared by the store's
    /// handles.
    pub(crate) fn changes(&self) -> &Arc<Changes> {
        match self {
            Db::Sqlite(_, _, changes) | Db::Postgres(_, changes) => changes,
        }
    }
}

/// An open write transaction; dropped without [`Tx::commit`], it is rolled back.
#[derive(Debug)]
pub(crate) struct Tx {
    inner: TxInner,
    changes: Arc<Changes>,
    /// The answer tables its statements may have changed (counted once it commits).
    changed: Tables,
}

#[derive(Debug)]
enum TxInner {
    Sqlite(sqlite::SqliteTx),
    Postgres(Box<sqlx::Transaction<'static, sqlx::Postgres>>),
}

impl Tx {
    /// Commits; returns once the transaction is committed (on SQLite, with its group), and
    /// after counting it in [`Changes`] when it may have changed an answer.
    pub(crate) async fn commit(self) -> Result<(), DbError> {
        let committed = match self.inner {
            TxInner::Sqlite(tx) => tx.commit().await,
            TxInner::Postgres(tx) => tx.commit().await.map_err(DbError::from),
        };
        // A commit that failed may still have reached the database: counted either way.
        if !self.changed.is_empty() {
            self.changes.committed(self.changed);
        }
        committed
    }

    pub(crate) async fn rollback(self) -> Result<(), DbError> {
        match self.inner {
            TxInner::Sqlite(tx) => tx.rollback(),
            TxInner::Postgres(tx) => Ok(tx.rollback().await?),
        }
    }
}

/// Where a statement runs: a handle, or an open transaction.
pub(crate) enum Exec<'e> {
    Db(&'e Db),
    Tx(&'e mut Tx),
}

impl<'e> From<&'e Db> for Exec<'e> {
    fn from(db: &'e Db) -> Exec<'e> {
        Exec::Db(db)
    }
}

impl<'e> From<&'e mut Tx> for Exec<'e> {
    fn from(tx: &'e mut Tx) -> Exec<'e> {
        Exec::Tx(tx)
    }
}

/// A value read from a SQLite row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A row read from either backend.
#[derive(Debug)]
pub(crate) enum Row {
    Sqlite { names: Arc<[String]>, values: Vec<Value> },
    Postgres(PgRow),
}

impl Row {
    /// The column named `column`, decoded as `T`.
    pub(crate) fn try_get<T: Decode>(&self, column: &str) -> Result<T, DbError> {
        let decode = || DbError::Decode { column: column.to_owned() };
        match self {
            Row::Sqlite { names, values } => {
                let index = names.iter().position(|name| name == column).ok_or_else(decode)?;
                T::from_value(&values[index]).ok_or_else(decode)
            }
            Row::Postgres(row) => T::from_pg(row, column).ok_or_else(decode),
        }
    }
}

/// A Rust type a column decodes to.
pub(crate) trait Decode: Sized {
    fn from_value(value: &Value) -> Option<Self>;
    fn from_pg(row: &PgRow, column: &str) -> Option<Self>;
}

impl Decode for Option<i64> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            Value::Int(i) => Some(Some(*i)),
            _ => None,
        }
    }

    fn from_pg(row: &PgRow, column: &str) -> Option<Self> {
        postgres::int(row, column)
    }
}

impl Decode for i64 {
    fn from_value(value: &Value) -> Option<Self> {
        Option::<i64>::from_value(value)?
    }

    fn from_pg(row: &PgRow, column: &str) -> Option<Self> {
        postgres::int(row, column)?
    }
}

impl Decode for Option<String> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            Value::Text(text) => Some(Some(text.clone())),
            _ => None,
        }
    }

    fn from_pg(row: &PgRow, column: &str) -> Option<Self> {
        use sqlx::Row as _;
        row.try_get::<Option<String>, _>(column).ok()
    }
}

impl Decode for String {
    fn from_value(value: &Value) -> Option<Self> {
        Option::<String>::from_value(value)?
    }

    fn from_pg(row: &PgRow, column: &str) -> Option<Self> {
        Option::<String>::from_pg(row, column)?
    }
}

/// Why a statement failed.
#[derive(Debug)]
pub(crate) enum DbError {
    Sqlite(rusqlite::Error),
    Postgres(sqlx::Error),
    /// A column is missing or holds another type; the value is never named.
    Decode {
        column: String,
    },
    /// `fetch_one` found no row.
    NoRow,
    /// The statement's placeholders and bound values do not match.
    Arity {
        expected: usize,
        bound: usize,
    },
    /// The SQLite writer's group failed to commit.
    GroupCommit(String),
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> DbError {
        DbError::Sqlite(e)
    }
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> DbError {
        DbError::Postgres(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_arguments_keep_their_type() {
        assert_eq!(None::<&str>.into_arg(), Arg::Text(None));
        assert_eq!(None::<i64>.into_arg(), Arg::Int(None));
        assert_eq!("x".into_arg(), Arg::Text(Some("x".to_owned())));
    }

    #[test]
    fn writes_to_the_answer_tables_are_told_from_the_rest() {
        for (sql, tables) in [
            ("UPDATE credentials SET revoked_at = $2 WHERE digest = $1", Tables::CREDENTIALS),
            ("  update Grants SET revoked_at = $2", Tables::GRANTS),
            ("DELETE FROM clients WHERE client_id = $1", Tables::CLIENTS),
            ("DELETE FROM accounts WHERE id = $1", Tables::ACCOUNTS),
            ("UPDATE sessions SET revoked_at = $2 WHERE id = $1", Tables::SESSIONS),
            ("UPDATE projects SET verified = $2 WHERE id = $1", Tables::PROJECTS),
            (
                "INSERT INTO grants (id) VALUES ($1) ON CONFLICT (id) DO UPDATE SET s = $2",
                Tables::GRANTS,
            ),
            ("INSERT OR REPLACE INTO grants (id) VALUES ($1)", Tables::ALL),
            (
                "WITH gone AS (DELETE FROM credentials RETURNING digest) SELECT 1 FROM gone",
                Tables::ALL,
            ),
            ("VACUUM", Tables::ALL),
        ] {
            assert_eq!(Tables::named_by(sql), tables, "{sql}");
        }
        for sql in [
            "SELECT 1",
            "INSERT INTO credentials (digest) VALUES ($1)",
            "INSERT INTO credentials (digest) VALUES ($1) ON CONFLICT DO NOTHING",
            "INSERT INTO counters (k) VALUES ($1) ON CONFLICT (k) DO UPDATE SET n = n + 1",
            "UPDATE push_messages SET acked_at = $1",
            "DELETE FROM audit_log WHERE at < $1",
            "UPDATE credentials_archive SET x = 1",
        ] {
            assert_eq!(Tables::named_by(sql), Tables::NONE, "{sql}");
        }
    }

    #[test]
    fn each_kind_of_answer_counts_the_tables_it_is_read_from() {
        let changes = Changes::default();
        let kinds =
            [Answer::Token, Answer::Client, Answer::Session, Answer::Project, Answer::Grants];
        let counts = || kinds.map(|of| changes.count(of));
        let mut before = counts();
        // Whether each kind's count grows: token, client, session, project, grants.
        for (tables, grows) in [
            (Tables::CREDENTIALS, [true, false, true, false, false]),
            (Tables::credentials_of(CredentialKind::Session), [true, false, true, false, false]),
            (Tables::TOKENS, [true, false, false, false, false]),
            (
                Tables::credentials_of(CredentialKind::AuthorizationCode),
                [true, false, false, false, false],
            ),
            (Tables::CLIENTS, [true, true, false, false, false]),
            (Tables::GRANTS, [true, false, false, false, true]),
            (Tables::ACCOUNTS, [true, false, true, false, false]),
            (Tables::SESSIONS, [false, false, true, false, false]),
            (Tables::PROJECTS, [false, false, false, true, false]),
            (Tables::ALL, [true, true, true, true, true]),
            (Tables::GRANTS.union(Tables::SESSIONS), [true, false, true, false, true]),
        ] {
            changes.committed(tables);
            let after = counts();
            for (i, grew) in grows.into_iter().enumerate() {
                assert_eq!(after[i] > before[i], grew, "{tables:?}, answer {i}");
                assert!(after[i] >= before[i]);
            }
            before = after;
        }
    }

    #[test]
    fn decoding_refuses_another_type() {
        assert_eq!(i64::from_value(&Value::Int(7)), Some(7));
        assert_eq!(i64::from_value(&Value::Null), None);
        assert_eq!(Option::<i64>::from_value(&Value::Null), Some(None));
        assert_eq!(String::from_value(&Value::Int(7)), None);
        assert_eq!(Option::<String>::from_value(&Value::Text("a".into())), Some(Some("a".into())));
    }
}
