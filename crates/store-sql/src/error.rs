//! Maps database errors to store errors without echoing bound values.
//!
//! PostgreSQL quotes the offending value in the messages of data exceptions (SQLSTATE class 22)
//! and integrity violations (class 23), so those messages are replaced by the code and the
//! constraint name. SQLite messages name tables and columns only and are kept.

use sqlx::error::ErrorKind;
use tessera_store::StoreError;

use crate::db::DbError;

/// Maps any failure of the operation `op` to `StoreError::Backend`.
pub(crate) fn backend(op: &'static str) -> impl FnOnce(DbError) -> StoreError {
    move |e| StoreError::Backend(format!("{op}: {}", describe(&e)))
}

/// Like [`backend`], but a uniqueness violation becomes `StoreError::Conflict` naming the rule.
pub(crate) fn insert(op: &'static str) -> impl FnOnce(DbError) -> StoreError {
    move |e| match conflict_name(&e) {
        Some(rule) => StoreError::Conflict(rule),
        None => backend(op)(e),
    }
}

/// The name of the uniqueness rule that the error broke, if it broke one.
pub(crate) fn conflict_name(e: &DbError) -> Option<&'static str> {
    match e {
        DbError::Sqlite(rusqlite::Error::SqliteFailure(code, message)) => {
            let unique = matches!(
                code.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            );
            // SQLite names `table.column` in its message.
            unique.then(|| rule_name(message.as_deref().unwrap_or_default()))
        }
        DbError::Postgres(e) => {
            let db = e.as_database_error()?;
            if !db.is_unique_violation() {
                return None;
            }
            // PostgreSQL names the constraint (the index).
            Some(rule_name(db.constraint().unwrap_or_else(|| db.message())))
        }
        _ => None,
    }
}

/// The static rule name for a constraint or message; the most specific patterns come first.
fn rule_name(hint: &str) -> &'static str {
    const RULES: [(&str, &str); 14] = [
        ("email_lower", "email"),
        ("credentials", "credential"),
        ("grants", "grant"),
        ("sessions", "session"),
        ("projects_name", "project_name"),
        ("projects.name", "project_name"),
        ("projects", "project"),
        ("clients", "client"),
        ("domains", "domain"),
        ("services", "service"),
        ("accounts", "account"),
        ("signing_keys", "key"),
        ("audit_events", "audit_event"),
        ("counters", "counter"),
    ];
    RULES.iter().find(|(pattern, _)| hint.contains(pattern)).map_or("unique", |(_, rule)| rule)
}

/// A description of the error that is safe for logs.
pub(crate) fn describe(e: &DbError) -> String {
    match e {
        DbError::Sqlite(e) => crate::db::sqlite::describe(e),
        DbError::Postgres(e) => describe_postgres(e),
        DbError::Decode { column } => format!("cannot decode column {column}"),
        DbError::NoRow => "no row".to_owned(),
        DbError::Arity { expected, bound } => {
            format!("the statement has {expected} placeholders and {bound} values")
        }
        DbError::GroupCommit(e) => format!("group commit: {e}"),
    }
}

fn describe_postgres(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|code| code.into_owned()).unwrap_or_default();
            let kind = match db.kind() {
                ErrorKind::UniqueViolation => "unique violation",
                ErrorKind::ForeignKeyViolation => "foreign key violation",
                ErrorKind::NotNullViolation => "not-null violation",
                ErrorKind::CheckViolation => "check violation",
                ErrorKind::ExclusionViolation => "exclusion violation",
                _ => "database error",
            };
            let quotes_values =
                code.len() == 5 && (code.starts_with("22") || code.starts_with("23"));
            if quotes_values {
                match db.constraint() {
                    Some(constraint) => format!("{kind} (code {code}, constraint {constraint})"),
                    None => format!("{kind} (code {code})"),
                }
            } else {
                format!("{kind} (code {code}): {}", db.message())
            }
        }
        // Decoding errors may print the value they could not decode, so only the column is named.
        sqlx::Error::ColumnDecode { index, .. } => format!("cannot decode column {index}"),
        sqlx::Error::Decode(_) => "cannot decode a value".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::rule_name;

    #[test]
    fn rule_names_prefer_the_specific_pattern() {
        assert_eq!(rule_name("accounts_email_lower_key"), "email");
        assert_eq!(rule_name("UNIQUE constraint failed: accounts.email_lower"), "email");
        assert_eq!(rule_name("credentials_pkey"), "credential");
        assert_eq!(rule_name("UNIQUE constraint failed: credentials.digest"), "credential");
        assert_eq!(rule_name("projects_name_key"), "project_name");
        assert_eq!(rule_name("UNIQUE constraint failed: projects.name"), "project_name");
        assert_eq!(rule_name("projects_pkey"), "project");
        assert_eq!(rule_name("accounts_pkey"), "account");
        assert_eq!(
            rule_name(
                "UNIQUE constraint failed: grants.account_id, grants.client_id, grants.protocol"
            ),
            "grant"
        );
        assert_eq!(rule_name("something_else"), "unique");
    }
}
