-- Small named values about the deployment itself: the readiness heartbeat and the check value
-- sealed with the key-encryption key.

CREATE TABLE server_state (
    name       TEXT   NOT NULL PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
