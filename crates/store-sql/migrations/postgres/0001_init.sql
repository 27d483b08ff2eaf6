-- The initial tessera schema (PostgreSQL flavour; keep in step with migrations/sqlite/0001_init.sql).
-- Portable types only: TEXT ids and JSON, BIGINT unix seconds, BIGINT 0/1 for booleans.

CREATE TABLE accounts (
    id              TEXT    NOT NULL PRIMARY KEY,
    email           TEXT    NOT NULL,
    -- The email lower-cased by the server; uniqueness is enforced on this column.
    email_lower     TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    domain          TEXT,
    password_hash   TEXT,
    state           TEXT    NOT NULL,
    is_admin        BIGINT  NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    totp_secret_enc TEXT,
    totp_last_step  BIGINT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
CREATE UNIQUE INDEX accounts_email_lower_key ON accounts (email_lower);
CREATE INDEX accounts_created_idx ON accounts (created_at, id);

CREATE TABLE domains (
    name       TEXT   NOT NULL PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE projects (
    id               TEXT   NOT NULL PRIMARY KEY,
    name             TEXT   NOT NULL,
    owner_account_id TEXT   NOT NULL REFERENCES accounts (id),
    verified         BIGINT NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
    created_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX projects_name_key ON projects (name);
CREATE INDEX projects_owner_idx ON projects (owner_account_id);

CREATE TABLE clients (
    client_id     TEXT   NOT NULL PRIMARY KEY,
    project_id    TEXT   NOT NULL REFERENCES projects (id),
    kind          TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    secret_digest TEXT,
    settings      TEXT   NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX clients_project_idx ON clients (project_id, created_at);

CREATE TABLE grants (
    id           TEXT   NOT NULL PRIMARY KEY,
    account_id   TEXT   NOT NULL REFERENCES accounts (id),
    client_id    TEXT   NOT NULL,
    protocol     TEXT   NOT NULL,
    scopes       TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
-- At most one live grant per account, client and protocol; upserts race on this index.
CREATE UNIQUE INDEX grants_live_key ON grants (account_id, client_id, protocol) WHERE revoked_at IS NULL;
CREATE INDEX grants_account_idx ON grants (account_id, created_at);

CREATE TABLE sessions (
    id            TEXT   NOT NULL PRIMARY KEY,
    account_id    TEXT   NOT NULL REFERENCES accounts (id),
    created_at    BIGINT NOT NULL,
    auth_time     BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    persistent    BIGINT NOT NULL DEFAULT 0 CHECK (persistent IN (0, 1)),
    second_factor BIGINT NOT NULL DEFAULT 0 CHECK (second_factor IN (0, 1)),
    user_agent    TEXT   NOT NULL,
    ip            TEXT   NOT NULL
);
CREATE INDEX sessions_account_idx ON sessions (account_id, created_at);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

CREATE TABLE credentials (
    digest       TEXT   NOT NULL PRIMARY KEY,
    kind         TEXT   NOT NULL,
    account_id   TEXT   REFERENCES accounts (id),
    grant_id     TEXT   REFERENCES grants (id),
    session_id   TEXT   REFERENCES sessions (id),
    client_id    TEXT,
    scopes       TEXT   NOT NULL,
    data         TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    consumed_at  BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX credentials_grant_idx ON credentials (grant_id);
CREATE INDEX credentials_session_idx ON credentials (session_id);
CREATE INDEX credentials_account_kind_idx ON credentials (account_id, kind, created_at);
CREATE INDEX credentials_expires_idx ON credentials (expires_at);
CREATE INDEX credentials_revoked_idx ON credentials (revoked_at);
CREATE INDEX credentials_consumed_idx ON credentials (consumed_at);

CREATE TABLE signing_keys (
    kid          TEXT   NOT NULL PRIMARY KEY,
    alg          TEXT   NOT NULL,
    state        TEXT   NOT NULL,
    private_enc  TEXT   NOT NULL,
    public_der   TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    activated_at BIGINT,
    retired_at   BIGINT
);

CREATE TABLE audit_events (
    id         TEXT   NOT NULL PRIMARY KEY,
    at         BIGINT NOT NULL,
    event      TEXT   NOT NULL,
    account_id TEXT,
    actor      TEXT   NOT NULL,
    ip         TEXT   NOT NULL,
    detail     TEXT   NOT NULL
);
CREATE INDEX audit_events_account_at_idx ON audit_events (account_id, at);
CREATE INDEX audit_events_at_idx ON audit_events (at);

CREATE TABLE counters (
    key          TEXT   NOT NULL PRIMARY KEY,
    count        BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    window_secs  BIGINT NOT NULL
);
