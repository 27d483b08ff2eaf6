-- Topic subscriptions: a send to `/topics/<topic>` of a project reaches every subscribed
-- registration. `registration` is the registration id's digest; `sealed_id` the id sealed
-- under the key-encryption key (the fan-out sends to the id through the one validator).

CREATE TABLE push_topics (
    project_id   TEXT   NOT NULL,
    topic        TEXT   NOT NULL,
    registration TEXT   NOT NULL,
    sealed_id    TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (project_id, topic, registration)
);
CREATE INDEX push_topics_registration_idx ON push_topics (registration);
