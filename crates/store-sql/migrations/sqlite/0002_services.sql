-- Services: ClientLogin service names, the scope prefixes they own, and the legacy protocols they accept.

CREATE TABLE services (
    name                 TEXT   NOT NULL PRIMARY KEY,
    display_name         TEXT   NOT NULL,
    scopes               TEXT   NOT NULL,
    clientlogin_ttl_secs BIGINT NOT NULL,
    protocols            TEXT   NOT NULL,
    created_at           BIGINT NOT NULL
);
