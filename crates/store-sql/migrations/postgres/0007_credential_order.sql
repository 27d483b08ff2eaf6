-- A strictly increasing insertion order for credentials: the per-account-per-app caps ("at most
-- ten, the eleventh revokes the oldest") order by it instead of `created_at`, which has whole-second
-- ties. Capped inserts take a transaction-scoped advisory lock per account, client and kind, so
-- sequence values are handed out in the order the cap sees them.

ALTER TABLE credentials ADD COLUMN seq BIGSERIAL;

CREATE INDEX credentials_cap_idx ON credentials (account_id, client_id, kind, seq)
    WHERE revoked_at IS NULL AND consumed_at IS NULL;
