//! Stored push messages: enqueue under the per-registration limits, read what waits, acknowledge;
//! and topic subscriptions.

use crate::db::{self, Row};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use tessera_store::{
    Enqueued, PushLimits, PushMessageKind, PushMessageRecord, PushStore, PushTopicRecord, Result,
    StoreError, Subscribed, Timestamp,
};

use crate::error::backend;
use crate::{Backend, SqlStore, bool_int, count_u64, get, get_bool};

fn message_from_row(row: &Row) -> Result<PushMessageRecord> {
    let kind: String = get(row, "kind")?;
    Ok(PushMessageRecord {
        id: get(row, "id")?,
        registration: get(row, "registration")?,
        sender: get(row, "sender")?,
        kind: PushMessageKind::parse(&kind)
            .ok_or_else(|| StoreError::Backend(format!("unknown push message kind {kind:?}")))?,
        collapse_key: get(row, "collapse_key")?,
        payload: get(row, "payload")?,
        delay_while_idle: get_bool(row, "delay_while_idle")?,
        total_deleted: count_u64(get(row, "total_deleted")?),
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
    })
}

fn topic_from_row(row: &Row) -> Result<PushTopicRecord> {
    Ok(PushTopicRecord {
        project_id: get(row, "project_id")?,
        topic: get(row, "topic")?,
        registration: get(row, "registration")?,
        sealed_id: get(row, "sealed_id")?,
        created_at: get(row, "created_at")?,
    })
}

type Tx = crate::db::Tx;

/// Removes an acknowledged message: found among its registration's through the table's key.
pub(crate) const ACK: &str = "DELETE FROM push_messages WHERE registration = $1 AND id = $2";

/// The waiting messages of a registration, oldest first (read in the table's key order).
pub(crate) const PENDING: &str = "SELECT id, registration, sender, kind, collapse_key, payload, \
     delay_while_idle, total_deleted, created_at, expires_at FROM push_messages \
     WHERE registration = $1 AND expires_at > $2 ORDER BY seq LIMIT $3";

/// Removes an acknowledged message (committed in groups: `group_commit::PushAcks`).
pub(crate) fn ack_query(registration: &str, id: &str) -> crate::db::Query {
    db::query(ACK).bind(registration.to_owned()).bind(id.to_owned())
}

/// The statement of [`ack_many`] for `n` acknowledgements (PostgreSQL).
///
/// Each (registration, id) is looked up on its own, through the table's key (a lateral subquery
/// with `LIMIT 1`, which the planner cannot merge into a join), and the rows found are deleted by
/// their row ids. Written as a join of the list with the table, a table without statistics
/// (autovacuum off, or grown since it was last analyzed) was read by scanning it whole.
pub(crate) fn ack_many_sql(n: usize) -> String {
    format!(
        "DELETE FROM push_messages WHERE ctid = ANY (ARRAY(SELECT t.ctid \
         FROM (VALUES {}) AS v (registration, id) CROSS JOIN LATERAL (SELECT m.ctid \
         FROM push_messages m WHERE m.registration = v.registration AND m.id = v.id LIMIT 1) \
         AS t)) RETURNING registration, id",
        crate::value_rows(n, 2, Backend::Postgres)
    )
}

/// The most acknowledgements [`ack_many`] takes: two parameters each.
pub(crate) const ACKS_PER_STATEMENT: usize = IN_CHUNK / 2;

/// Removes acknowledged messages (at most [`ACKS_PER_STATEMENT`]) in one statement on `write`, a
/// transaction of its own (PostgreSQL); answers the (registration, id) pairs that were stored.
pub(crate) async fn ack_many(
    write: &crate::db::Db,
    acks: &[(String, String)],
    op: &'static str,
) -> Result<HashSet<(String, String)>> {
    debug_assert!(acks.len() <= ACKS_PER_STATEMENT);
    let query = acks.iter().fold(db::query_built(ack_many_sql(acks.len())), |query, it| {
        query.bind(it.0.clone()).bind(it.1.clone())
    });
    let mut deleted = HashSet::with_capacity(acks.len());
    for row in query.fetch_all(write).await.map_err(backend(op))? {
        deleted.insert((get(&row, "registration")?, get(&row, "id")?));
    }
    Ok(deleted)
}

/// Binds a message's ten columns, in the order of the `INSERT` statements' column lists.
fn bind_message(query: crate::db::Query, message: &PushMessageRecord) -> crate::db::Query {
    query
        .bind(message.id.clone())
        .bind(message.registration.clone())
        .bind(message.sender.clone())
        .bind(message.kind.as_str())
        .bind(message.collapse_key.clone())
        .bind(message.payload.clone())
        .bind(bool_int(message.delay_while_idle))
        .bind(i64::try_from(message.total_deleted).unwrap_or(i64::MAX))
        .bind(message.created_at)
        .bind(message.expires_at)
}

async fn insert(
    tx: &mut Tx,
    on: Backend,
    message: &PushMessageRecord,
    op: &'static str,
) -> Result<()> {
    insert_all(tx, on, &[message], op).await
}

async fn scalar(tx: &mut Tx, op: &'static str, query: crate::db::Query) -> Result<i64> {
    let row = query.fetch_one(&mut *tx).await.map_err(backend(op))?;
    get(&row, "n")
}

/// The most parameters one statement binds (SQLite's default limit is 32,766).
const IN_CHUNK: usize = 500;

/// Locks `registrations` (in order, without repeats) until the transaction ends, on
/// PostgreSQL: the enqueue lock of a registration is its row in `push_queues`, made by the first
/// enqueue that names it. One multi-row `INSERT … ON CONFLICT DO UPDATE … WHERE false` writes
/// the rows that are missing and locks the others without changing them, in the order given, so
/// that two transactions locking overlapping sets never wait on each other in a cycle; an
/// enqueue that names a registration another is making waits for that one to end.
///
/// Row locks are kept in the rows themselves. Advisory locks, one a registration, were kept in
/// the server's shared lock table, which has room for about `max_locks_per_transaction` (64) a
/// connection: a dozen multicasts of 1000 in flight filled it, and every transaction on the
/// server then failed with "out of shared memory".
async fn lock_registrations(tx: &mut Tx, registrations: &[&str], op: &'static str) -> Result<()> {
    for chunk in registrations.chunks(IN_CHUNK) {
        let sql = format!(
            "INSERT INTO push_queues (registration) VALUES {} ON CONFLICT (registration) \
             DO UPDATE SET registration = EXCLUDED.registration WHERE false",
            crate::value_rows(chunk.len(), 1, Backend::Postgres)
        );
        let query = chunk.iter().fold(db::query_built(sql), |query, it| query.bind(*it));
        query.execute(&mut *tx).await.map_err(backend(op))?;
    }
    Ok(())
}

/// Drops the expired messages of `registrations`.
async fn drop_expired(
    tx: &mut Tx,
    registrations: &[&str],
    now: Timestamp,
    op: &'static str,
) -> Result<()> {
    for chunk in registrations.chunks(IN_CHUNK) {
        let list = (2..=chunk.len() + 1).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "DELETE FROM push_messages WHERE expires_at <= $1 AND registration IN ({list})"
        );
        let mut query = db::query_built(sql).bind(now);
        for registration in chunk {
            query = query.bind((*registration).to_owned());
        }
        query.execute(&mut *tx).await.map_err(backend(op))?;
    }
    Ok(())
}

/// Stores one message under the per-registration limits, inside a transaction that holds the
/// registration's enqueue lock and has dropped its expired messages.
async fn enqueue_one(
    tx: &mut Tx,
    on: Backend,
    message: &PushMessageRecord,
    limits: PushLimits,
    op: &'static str,
) -> Result<Enqueued> {
    let registration = message.registration.clone();
    if let Some(key) = &message.collapse_key {
        let mut replaced = db::query(
            "DELETE FROM push_messages WHERE registration = $1 AND kind = 'message' \
             AND collapse_key = $2",
        )
        .bind(registration.clone())
        .bind(key.clone())
        .execute(&mut *tx)
        .await
        .map_err(backend(op))?
        .rows_affected();
        let keys = scalar(
            tx,
            op,
            db::query(
                "SELECT COUNT(DISTINCT collapse_key) AS n FROM push_messages \
                 WHERE registration = $1 AND kind = 'message' AND collapse_key IS NOT NULL",
            )
            .bind(registration.clone()),
        )
        .await?;
        if keys >= i64::from(limits.max_collapse_keys) {
            replaced += db::query(
                "DELETE FROM push_messages WHERE registration = $1 AND seq = (SELECT MIN(seq) \
                 FROM push_messages WHERE registration = $1 AND kind = 'message' \
                 AND collapse_key IS NOT NULL)",
            )
            .bind(registration.clone())
            .execute(&mut *tx)
            .await
            .map_err(backend(op))?
            .rows_affected();
        }
        insert(tx, on, message, op).await?;
        return Ok(Enqueued::Stored { replaced });
    }
    // Stored if still under the non-collapsible limit (`enqueue_many` writes the messages it
    // counted under it itself, and sends here those its count put at the limit).
    let query = db::query(
        "INSERT INTO push_messages (id, registration, sender, kind, collapse_key, payload, \
         delay_while_idle, total_deleted, created_at, expires_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
         WHERE (SELECT COUNT(*) FROM push_messages WHERE registration = $2 \
         AND kind = 'message' AND collapse_key IS NULL) < $11",
    );
    let stored = bind_message(query, message)
        .bind(i64::from(limits.max_non_collapsible))
        .execute(&mut *tx)
        .await
        .map_err(backend(op))?
        .rows_affected();
    if stored == 1 {
        return Ok(Enqueued::Stored { replaced: 0 });
    }
    let before = scalar(
        tx,
        op,
        db::query(
            "SELECT CAST(COALESCE(SUM(CASE WHEN kind = 'message' THEN 1 \
             ELSE total_deleted END), 0) AS BIGINT) AS n \
             FROM push_messages WHERE registration = $1",
        )
        .bind(registration.clone()),
    )
    .await?;
    db::query("DELETE FROM push_messages WHERE registration = $1")
        .bind(registration.clone())
        .execute(&mut *tx)
        .await
        .map_err(backend(op))?;
    let total_deleted = count_u64(before) + 1;
    let notice = PushMessageRecord {
        kind: PushMessageKind::DeletedMessages,
        collapse_key: None,
        payload: String::new(),
        delay_while_idle: false,
        total_deleted,
        ..message.clone()
    };
    insert(tx, on, &notice, op).await?;
    Ok(Enqueued::Overflowed { total_deleted })
}

/// What [`survey`] found of the registrations a batch names.
struct Survey {
    /// Live non-collapsible messages per registration (absent: none).
    plain: HashMap<String, i64>,
    /// The registrations that hold expired messages.
    expired: Vec<String>,
}

/// The statement of [`survey`] for `n` registrations (`$1` is the time).
///
/// On PostgreSQL each registration is looked up on its own (a lateral join over the list): the
/// only path to its rows is then the registration index, whatever the statistics say. With the
/// list as `registration IN (…)`, a table without statistics (autovacuum off, or grown since it
/// was last analyzed) gets the planner's default estimate of 0.5% of the rows per value, so a
/// list of 500 looked like the whole table and was read by scanning it, at a cost that grows with
/// every message stored. SQLite plans the list through the index.
pub(crate) fn survey_sql(n: usize, on: Backend) -> String {
    let plain = "CAST(SUM(CASE WHEN expires_at > $1 AND kind = 'message' AND collapse_key IS NULL \
                 THEN 1 ELSE 0 END) AS BIGINT) AS plain";
    let expired = "CAST(SUM(CASE WHEN expires_at <= $1 THEN 1 ELSE 0 END) AS BIGINT) AS expired";
    let registrations: Vec<String> = (2..=n + 1).map(|i| format!("${i}")).collect();
    match on {
        Backend::Postgres => {
            let values: Vec<String> = registrations.iter().map(|it| format!("({it})")).collect();
            format!(
                "SELECT r.registration, c.plain, c.expired FROM (VALUES {}) AS r (registration) \
                 CROSS JOIN LATERAL (SELECT {plain}, {expired} FROM push_messages m \
                 WHERE m.registration = r.registration GROUP BY m.registration) AS c",
                values.join(", ")
            )
        }
        Backend::Sqlite => format!(
            "SELECT registration, {plain}, {expired} \
             FROM push_messages WHERE registration IN ({}) GROUP BY registration",
            registrations.join(", ")
        ),
    }
}

/// Reads, in one pass over the registrations' index entries, how many live non-collapsible
/// messages each holds and which hold expired ones.
async fn survey(
    tx: &mut Tx,
    on: Backend,
    registrations: &[&str],
    now: Timestamp,
    op: &'static str,
) -> Result<Survey> {
    let mut survey =
        Survey { plain: HashMap::with_capacity(registrations.len()), expired: Vec::new() };
    for chunk in registrations.chunks(IN_CHUNK) {
        let mut query = db::query_built(survey_sql(chunk.len(), on)).bind(now);
        for registration in chunk {
            query = query.bind((*registration).to_owned());
        }
        for row in query.fetch_all(&mut *tx).await.map_err(backend(op))? {
            let registration: String = get(&row, "registration")?;
            if get::<i64>(&row, "expired")? > 0 {
                survey.expired.push(registration.clone());
            }
            survey.plain.insert(registration, get::<i64>(&row, "plain")?);
        }
    }
    Ok(survey)
}

/// Rows one multi-row insert writes (ten parameters each, within both backends' limits).
const INSERT_CHUNK: usize = 500;

/// Inserts `messages` as they are, in order, a chunk of rows per statement.
///
/// One statement for many rows, rather than one conditional `INSERT … SELECT` per message: on
/// SQLite a statement that may write several rows inside a transaction copies each page it
/// changes into a statement journal first, and a multicast of 1000 messages spent most of its
/// time there.
async fn insert_all(
    tx: &mut Tx,
    on: Backend,
    messages: &[&PushMessageRecord],
    op: &'static str,
) -> Result<()> {
    for chunk in messages.chunks(INSERT_CHUNK) {
        let rows = crate::value_rows(chunk.len(), 10, on);
        let sql = format!(
            "INSERT INTO push_messages (id, registration, sender, kind, collapse_key, payload, \
             delay_while_idle, total_deleted, created_at, expires_at) VALUES {rows}"
        );
        let query = chunk.iter().fold(db::query_built(sql), |query, it| bind_message(query, it));
        query.execute(&mut *tx).await.map_err(backend(op))?;
    }
    Ok(())
}

#[async_trait]
impl PushStore for SqlStore {
    async fn enqueue_many(
        &self,
        messages: &[PushMessageRecord],
        limits: PushLimits,
        now: Timestamp,
    ) -> Result<Vec<Enqueued>> {
        const OP: &str = "enqueue push message";
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let mut registrations: Vec<&str> =
            messages.iter().map(|it| it.registration.as_str()).collect();
        registrations.sort_unstable();
        registrations.dedup();
        let mut tx = self.begin(OP).await?;
        if self.backend == Backend::Postgres {
            lock_registrations(&mut tx, &registrations, OP).await?;
        }
        // Messages without a collapse key under their registration's limit (the common case)
        // are counted here and written together; the rest go one at a time, in order.
        let Survey { plain: mut counts, expired } =
            survey(&mut tx, self.backend, &registrations, now, OP).await?;
        let expired: Vec<&str> = expired.iter().map(String::as_str).collect();
        drop_expired(&mut tx, &expired, now, OP).await?;
        let max = i64::from(limits.max_non_collapsible);
        let mut under: Vec<&PushMessageRecord> = Vec::new();
        let mut outcomes = Vec::with_capacity(messages.len());
        for message in messages {
            if message.collapse_key.is_none() {
                let count = counts.entry(message.registration.clone()).or_insert(0);
                if *count < max {
                    *count += 1;
                    under.push(message);
                    outcomes.push(Enqueued::Stored { replaced: 0 });
                    continue;
                }
            }
            insert_all(&mut tx, self.backend, &under, OP).await?;
            under.clear();
            let outcome = enqueue_one(&mut tx, self.backend, message, limits, OP).await?;
            if let Enqueued::Overflowed { .. } = outcome {
                // Everything of the registration went; only the notice remains.
                counts.insert(message.registration.clone(), 0);
            }
            outcomes.push(outcome);
        }
        insert_all(&mut tx, self.backend, &under, OP).await?;
        tx.commit().await.map_err(backend(OP))?;
        Ok(outcomes)
    }

    async fn pending(
        &self,
        registration: &str,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<PushMessageRecord>> {
        let rows = db::query(PENDING)
            .bind(registration.to_owned())
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await
            .map_err(backend("pending push messages"))?;
        rows.iter().map(message_from_row).collect()
    }

    async fn ack(&self, registration: &str, id: &str) -> Result<bool> {
        self.acks.write((registration.to_owned(), id.to_owned())).await
    }

    async fn clear(&self, registration: &str) -> Result<u64> {
        const OP: &str = "clear push messages";
        let mut tx = self.begin(OP).await?;
        if self.backend == Backend::Postgres {
            db::query("DELETE FROM push_queues WHERE registration = $1")
                .bind(registration.to_owned())
                .execute(&mut tx)
                .await
                .map_err(backend(OP))?;
        }
        let cleared = db::query("DELETE FROM push_messages WHERE registration = $1")
            .bind(registration.to_owned())
            .execute(&mut tx)
            .await
            .map_err(backend(OP))?;
        tx.commit().await.map_err(backend(OP))?;
        Ok(cleared.rows_affected())
    }

    async fn sweep(&self, cutoff: Timestamp, batch: u32) -> Result<u64> {
        const OP: &str = "sweep push messages";
        let limit = batch.max(1);
        let mut tx = self.begin(OP).await?;
        let swept = db::query(
            "DELETE FROM push_messages WHERE (registration, seq) IN (SELECT registration, seq \
             FROM push_messages WHERE expires_at < $1 LIMIT $2)",
        )
        .bind(cutoff)
        .bind(i64::from(limit))
        .execute(&mut tx)
        .await
        .map_err(backend(OP))?;
        // Once the expired messages are gone (the sweeper calls again while batches come back
        // full), on PostgreSQL: the enqueue locks of registrations that hold nothing (their
        // devices' registrations were revoked without unregistering). An enqueue that names one
        // again makes it anew.
        if self.backend == Backend::Postgres && swept.rows_affected() < u64::from(limit) {
            db::query(
                "DELETE FROM push_queues WHERE registration IN (SELECT q.registration \
                 FROM push_queues q WHERE NOT EXISTS (SELECT 1 FROM push_messages m \
                 WHERE m.registration = q.registration) LIMIT $1)",
            )
            .bind(i64::from(limit))
            .execute(&mut tx)
            .await
            .map_err(backend(OP))?;
        }
        tx.commit().await.map_err(backend(OP))?;
        Ok(swept.rows_affected())
    }

    async fn subscribe(
        &self,
        subscription: &PushTopicRecord,
        max_topics: u32,
    ) -> Result<Subscribed> {
        const OP: &str = "subscribe to push topic";
        let registration = subscription.registration.clone();
        let mut tx = self.begin(OP).await?;
        if self.backend == Backend::Postgres {
            db::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 8))")
                .bind(format!("push-topics\n{registration}"))
                .execute(&mut tx)
                .await
                .map_err(backend(OP))?;
        }
        let already = scalar(
            &mut tx,
            OP,
            db::query(
                "SELECT COUNT(*) AS n FROM push_topics \
                 WHERE project_id = $1 AND topic = $2 AND registration = $3",
            )
            .bind(subscription.project_id.clone())
            .bind(subscription.topic.clone())
            .bind(registration.clone()),
        )
        .await?;
        if already > 0 {
            tx.commit().await.map_err(backend(OP))?;
            return Ok(Subscribed::Already);
        }
        let topics = scalar(
            &mut tx,
            OP,
            db::query("SELECT COUNT(*) AS n FROM push_topics WHERE registration = $1")
                .bind(registration.clone()),
        )
        .await?;
        if topics >= i64::from(max_topics) {
            tx.commit().await.map_err(backend(OP))?;
            return Ok(Subscribed::TooMany);
        }
        db::query(
            "INSERT INTO push_topics (project_id, topic, registration, sealed_id, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(subscription.project_id.clone())
        .bind(subscription.topic.clone())
        .bind(registration)
        .bind(subscription.sealed_id.clone())
        .bind(subscription.created_at)
        .execute(&mut tx)
        .await
        .map_err(backend(OP))?;
        tx.commit().await.map_err(backend(OP))?;
        Ok(Subscribed::Added)
    }

    async fn unsubscribe(&self, project_id: &str, topic: &str, registration: &str) -> Result<bool> {
        let query = db::query(
            "DELETE FROM push_topics WHERE project_id = $1 AND topic = $2 AND registration = $3",
        )
        .bind(project_id.to_owned())
        .bind(topic.to_owned())
        .bind(registration.to_owned());
        Ok(self.write_rows("unsubscribe from push topic", query).await? == 1)
    }

    async fn unsubscribe_all(&self, registration: &str) -> Result<u64> {
        let query = db::query("DELETE FROM push_topics WHERE registration = $1")
            .bind(registration.to_owned());
        self.write_rows("unsubscribe from every push topic", query).await
    }

    async fn subscribers(
        &self,
        project_id: &str,
        topic: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<PushTopicRecord>> {
        let rows = db::query(
            "SELECT project_id, topic, registration, sealed_id, created_at FROM push_topics \
             WHERE project_id = $1 AND topic = $2 AND registration > $3 \
             ORDER BY registration LIMIT $4",
        )
        .bind(project_id.to_owned())
        .bind(topic.to_owned())
        .bind(after.to_owned())
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(backend("push topic subscribers"))?;
        rows.iter().map(topic_from_row).collect()
    }
}
