-- The per-account-per-app caps order credentials by insertion: on SQLite that is the rowid, which
-- grows with every insert (a new row takes the largest rowid plus one) and which every write
-- transaction sees in commit order, because SQLite has one writer. Only the index is needed.

CREATE INDEX credentials_cap_idx ON credentials (account_id, client_id, kind)
    WHERE revoked_at IS NULL AND consumed_at IS NULL;
