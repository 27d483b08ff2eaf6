-- The per-account-per-app cap is enforced after the issuing transaction commits, one trim at a
-- time per account, client and kind. As one call, the trim holds its lock only while the server
-- runs it: sent as separate statements it also held it across the round trips to tessera, and
-- a busy node's round trips were what queued every issuance for one account and client.
--
-- Each statement of the function reads with a snapshot taken after the one before it, so the
-- UPDATE sees every insert committed before the lock was granted (a single statement that took
-- the lock would read with a snapshot from before it waited). The trim commits without waiting
-- for the WAL flush: it only evicts, and a trim lost with the server is redone by the next one.
CREATE FUNCTION tessera_trim_cap(
    p_account_id TEXT,
    p_client_id TEXT,
    p_kind TEXT,
    p_now BIGINT,
    p_cap BIGINT
) RETURNS BIGINT
LANGUAGE plpgsql
AS $$
DECLARE
    revoked BIGINT;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM pg_advisory_xact_lock(
        hashtextextended('cap' || chr(10) || p_account_id || chr(10) || p_client_id || chr(10) || p_kind, 7)
    );
    UPDATE credentials SET revoked_at = p_now WHERE digest IN (
        SELECT digest FROM credentials
        WHERE account_id = p_account_id AND client_id = p_client_id AND kind = p_kind
          AND revoked_at IS NULL AND consumed_at IS NULL
          AND (expires_at IS NULL OR expires_at > p_now)
        ORDER BY seq DESC OFFSET p_cap
    );
    GET DIAGNOSTICS revoked = ROW_COUNT;
    RETURN revoked;
END;
$$;
