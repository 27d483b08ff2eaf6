//! The embedded migrations on SQLite, applied through the writer connection.
//!
//! The bookkeeping is sqlx's own (`_sqlx_migrations`: version, description, checksum, success), so
//! a database migrated by earlier versions, which ran sqlx's SQLite migrator, carries on where it
//! stopped. As there: a migration that failed half-way stops the start (`dirty`), a changed
//! migration that already ran is refused (checksum), and one that ran but is unknown to this
//! binary (a newer version's) is refused too.

use std::sync::Arc;

use rusqlite::OptionalExtension as _;
use sqlx::migrate::Migrator;
use tessera_store::{Result, StoreError};

use crate::db::sqlite::Sqlite;

const CREATE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
)";

fn failed(what: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Backend(format!("migrate: {what}: {}", crate::db::sqlite::describe(&e)))
}

/// Applies `migrator`'s migrations that have not run yet, each in its own transaction together
/// with its bookkeeping row.
pub(crate) async fn sqlite(sqlite: &Arc<Sqlite>, migrator: &Migrator) -> Result<()> {
    sqlite
        .with_writer(|conn| Ok(apply(conn, migrator)))
        .await
        .map_err(|e| StoreError::Backend(format!("migrate: {}", crate::error::describe(&e))))?
}

fn apply(conn: &mut rusqlite::Connection, migrator: &Migrator) -> Result<()> {
    conn.execute_batch(CREATE).map_err(failed("create the bookkeeping table"))?;
    let dirty: Option<i64> = conn
        .query_row(
            "SELECT version FROM _sqlx_migrations WHERE success = false ORDER BY version LIMIT 1",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(failed("read the bookkeeping table"))?;
    if let Some(version) = dirty {
        return Err(StoreError::Backend(format!(
            "migrate: migration {version} is partially applied; fix the database by hand"
        )));
    }
    let applied: Vec<(i64, Vec<u8>)> = {
        let mut statement = conn
            .prepare("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
            .map_err(failed("read the bookkeeping table"))?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(failed("read the bookkeeping table"))?;
        rows.collect::<std::result::Result<_, _>>().map_err(failed("read the bookkeeping table"))?
    };
    for (version, checksum) in &applied {
        match migrator.iter().find(|m| m.migration_type.is_up_migration() && m.version == *version)
        {
            None => {
                return Err(StoreError::Backend(format!(
                    "migrate: migration {version} was applied but is unknown to this version"
                )));
            }
            Some(known) if known.checksum.as_ref() != checksum.as_slice() => {
                return Err(StoreError::Backend(format!(
                    "migrate: migration {version} was changed after it was applied"
                )));
            }
            Some(_) => {}
        }
    }
    for migration in migrator.iter().filter(|m| m.migration_type.is_up_migration()) {
        if applied.iter().any(|(version, _)| *version == migration.version) {
            continue;
        }
        let started = std::time::Instant::now();
        let tx = conn.transaction().map_err(failed("begin"))?;
        tx.execute_batch(migration.sql.as_str()).map_err(|e| {
            StoreError::Backend(format!(
                "migrate: migration {} failed: {}",
                migration.version,
                crate::db::sqlite::describe(&e)
            ))
        })?;
        tx.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (?1, ?2, TRUE, ?3, ?4)",
            rusqlite::params![
                migration.version,
                migration.description.as_ref(),
                migration.checksum.as_ref(),
                i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX)
            ],
        )
        .map_err(failed("record a migration"))?;
        tx.commit().map_err(failed("commit a migration"))?;
    }
    Ok(())
}
