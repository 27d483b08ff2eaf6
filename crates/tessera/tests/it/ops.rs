//! Operations: file modes of the data directory, readiness that proves the store can write, the
//! key-encryption-key check at start, access to `/metrics`, the default public URL, and the
//! connection limits and timeouts of the HTTP server.

use crate::support::{TestEnv, test_config};

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Issue 9: the data directory is 0700 and the database, its WAL and shared-memory files and the
/// generated kek are 0600.
#[cfg(unix)]
#[tokio::test]
async fn data_directory_and_database_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested").join("data");
    let raw = test_config(&data);
    let env = TestEnv::start_raw(raw, dir, tessera::StartOptions::default()).await;
    env.account("mode@example.test", "password-1").await;
    assert_eq!(mode(&data), 0o700);
    for file in ["tessera.db", "tessera.db-wal", "tessera.db-shm", "kek"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
}
