-- Push messages stored for a registration until its device acknowledges them or they expire.
-- `seq` orders them by insertion; enqueues for one registration take a transaction-scoped
-- advisory lock, so sequence values are handed out in the order the limits see them.

CREATE TABLE push_messages (
    seq              BIGSERIAL PRIMARY KEY,
    id               TEXT   NOT NULL,
    registration     TEXT   NOT NULL,
    sender           TEXT   NOT NULL,
    kind             TEXT   NOT NULL,
    collapse_key     TEXT,
    payload          TEXT   NOT NULL,
    delay_while_idle BIGINT NOT NULL CHECK (delay_while_idle IN (0, 1)),
    total_deleted    BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX push_messages_id_key ON push_messages (id);
CREATE INDEX push_messages_registration_idx ON push_messages (registration, seq);
CREATE INDEX push_messages_expires_idx ON push_messages (expires_at);
