-- Two-legged OAuth 1.0: a hosted domain's administrator authorizes a consumer for scopes, and the
-- consumer then acts for any account of the domain (`xoauth_requestor_id`). The subject of such a
-- grant is the domain, not one account, so it has a table of its own beside `grants`.

CREATE TABLE oauth1_domain_grants (
    id            TEXT   NOT NULL PRIMARY KEY,
    domain        TEXT   NOT NULL,
    client_id     TEXT   NOT NULL,
    -- Space-separated, sorted, without duplicates.
    scopes        TEXT   NOT NULL,
    -- The administrator (account id) who authorized it, or empty for the command line.
    granted_by    TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
-- At most one live authorization per domain and consumer; authorizing again replaces its scopes.
CREATE UNIQUE INDEX oauth1_domain_grants_live_key
    ON oauth1_domain_grants (domain, client_id) WHERE revoked_at IS NULL;
CREATE INDEX oauth1_domain_grants_domain_idx ON oauth1_domain_grants (domain, created_at);
