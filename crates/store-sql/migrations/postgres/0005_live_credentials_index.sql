-- Live credentials of an account by kind (refresh-token and app-password limits, listings) without
-- walking the revoked and used rows that accumulate until the sweeper removes them.

CREATE INDEX credentials_account_kind_live_idx ON credentials (account_id, kind, created_at)
    WHERE revoked_at IS NULL AND consumed_at IS NULL;
