//! Statements on PostgreSQL through sqlx's native driver: each is prepared once per connection
//! and kept in the connection's statement cache, and its rows are read as the driver returns
//! them, without converting them to another representation.

use futures_util::TryStreamExt as _;
use sqlx::Arguments as _;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{AssertSqlSafe, Postgres};

use super::{Arg, DbError, Done, Output, Query, Row, Want};

/// Runs `query` on a pool or a connection.
pub(crate) async fn run<'c, E>(executor: E, query: Query, want: Want) -> Result<Output, DbError>
where
    E: sqlx::Executor<'c, Database = Postgres>,
{
    let mut args = PgArguments::default();
    for arg in &query.args {
        match arg {
            Arg::Int(value) => args.add(*value),
            Arg::Text(value) => args.add(value.clone()),
        }
        .map_err(|e| DbError::Postgres(sqlx::Error::Encode(e)))?;
    }
    let statement = sqlx::query_with(AssertSqlSafe(query.sql), args);
    match want {
        Want::Execute => {
            let done = statement.execute(executor).await?;
            Ok(Output::Done(Done { rows: done.rows_affected() }))
        }
        Want::Optional => {
            let row = statement.fetch_optional(executor).await?;
            Ok(Output::Rows(row.map(Row::Postgres).into_iter().collect()))
        }
        Want::All => {
            let rows: Vec<PgRow> = statement.fetch(executor).try_collect().await?;
            Ok(Output::Rows(rows.into_iter().map(Row::Postgres).collect()))
        }
    }
}

/// An integer column of any width (`BIGINT` columns, `INTEGER` expressions, booleans as 0/1).
pub(super) fn int(row: &PgRow, column: &str) -> Option<Option<i64>> {
    use sqlx::Row as _;
    if let Ok(value) = row.try_get::<Option<i64>, _>(column) {
        return Some(value);
    }
    if let Ok(value) = row.try_get::<Option<i32>, _>(column) {
        return Some(value.map(i64::from));
    }
    if let Ok(value) = row.try_get::<Option<i16>, _>(column) {
        return Some(value.map(i64::from));
    }
    row.try_get::<Option<bool>, _>(column).ok().map(|value| value.map(i64::from))
}
