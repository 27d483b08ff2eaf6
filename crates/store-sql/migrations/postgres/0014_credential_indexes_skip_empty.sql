-- Most credentials leave most indexed columns empty: a client's own access token has no account,
-- grant or session, and no credential is revoked or used when it is written. The indexes now hold
-- only the rows that have a value, so writing a token touches the b-trees of what it has, not of
-- every column. Each statement that reads through one of them compares the column with a value
-- (or names the key), which implies the column is not null, so the same index still serves it.

DROP INDEX credentials_grant_idx;
CREATE INDEX credentials_grant_idx ON credentials (grant_id) WHERE grant_id IS NOT NULL;

DROP INDEX credentials_session_idx;
CREATE INDEX credentials_session_idx ON credentials (session_id) WHERE session_id IS NOT NULL;

DROP INDEX credentials_account_kind_idx;
CREATE INDEX credentials_account_kind_idx ON credentials (account_id, kind, created_at)
    WHERE account_id IS NOT NULL;

DROP INDEX credentials_revoked_idx;
CREATE INDEX credentials_revoked_idx ON credentials (revoked_at) WHERE revoked_at IS NOT NULL;

DROP INDEX credentials_consumed_idx;
CREATE INDEX credentials_consumed_idx ON credentials (consumed_at) WHERE consumed_at IS NOT NULL;

DROP INDEX credentials_account_kind_live_idx;
CREATE INDEX credentials_account_kind_live_idx ON credentials (account_id, kind, created_at)
    WHERE revoked_at IS NULL AND consumed_at IS NULL AND account_id IS NOT NULL;

DROP INDEX credentials_cap_idx;
CREATE INDEX credentials_cap_idx ON credentials (account_id, client_id, kind, seq)
    WHERE revoked_at IS NULL AND consumed_at IS NULL AND account_id IS NOT NULL;
