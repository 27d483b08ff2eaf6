-- Moving applications off the legacy protocols: per-application deprecation dates (they override
-- the protocol's dates from the configuration), and legacy request counts per protocol,
-- application and UTC day (added in batches by each node).

CREATE TABLE legacy_deprecations (
    protocol    TEXT   NOT NULL,
    client_id   TEXT   NOT NULL,
    warn_from   BIGINT,
    refuse_from BIGINT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (protocol, client_id)
);

CREATE TABLE legacy_requests (
    protocol  TEXT   NOT NULL,
    client_id TEXT   NOT NULL,
    day       BIGINT NOT NULL,
    requests  BIGINT NOT NULL,
    PRIMARY KEY (protocol, client_id, day)
);
