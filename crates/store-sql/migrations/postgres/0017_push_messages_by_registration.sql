-- A stored push message is reached through its registration: it is written under the
-- registration's enqueue lock, read with the registration's other messages, acknowledged by
-- registration and id, and counted by registration. The table is keyed by (registration, seq),
-- and the separate indexes on `seq` alone and on `id` are gone: each message written or
-- acknowledged touched four indexes, now two (this key and the expiry index the sweep uses).
-- An acknowledgement finds its message among its registration's (at most 100 and a few).
ALTER TABLE push_messages DROP CONSTRAINT push_messages_pkey;
DROP INDEX push_messages_id_key;
DROP INDEX push_messages_registration_idx;
ALTER TABLE push_messages ADD CONSTRAINT push_messages_pkey PRIMARY KEY (registration, seq);
