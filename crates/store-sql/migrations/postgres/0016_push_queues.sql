-- A row for each registration that push messages have been stored for: the enqueue lock of the
-- registration. An enqueue writes the rows it is missing and locks the others (row locks, kept
-- in the rows, not in the server's shared lock table), so that the per-registration limits hold
-- under concurrent sends and across nodes. Unregistering deletes the row; the push sweep deletes
-- rows whose registration holds no message.
CREATE TABLE push_queues (
    registration TEXT PRIMARY KEY
);
