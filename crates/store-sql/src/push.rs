//! Stored push messages: enqueue under the per-registration limits, read what waits, acknowledge;
//! and topic subscriptions.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use tessera_store::{
    Enqueued, PushLimits, PushMessageKind, PushMessageRecord, PushStore, PushTopicRecord, Result,
    StoreError, Subscribed, Timestamp,
};

use crate::error::backend;
use crate::{Backend, SqlStore, bool_int, count_u64, get, get_bool};

fn message_from_row(row: &AnyRow) -> Result<PushMessageRecord> {
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

fn topic_from_row(row: &AnyRow) -> Result<PushTopicRecord> {
    Ok(PushTopicRecord {
        project_id: get(row, "project_id")?,
        topic: get(row, "topic")?,
        registration: get(row, "registration")?,
        sealed_id: get(row, "sealed_id")?,
        created_at: get(row, "created_at")?,
    })
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

async fn insert(tx: &mut Tx, message: &PushMessageRecord, op: &'static str) -> Result<()> {
    sqlx::query(
        "INSERT INTO push_messages (id, registration, sender, kind, collapse_key, payload, \
         delay_while_idle, total_deleted, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
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
    .execute(&mut **tx)
    .await
    .map_err(backend(op))?;
    Ok(())
}

async fn scalar(tx: &mut Tx, op: &'static str, query: crate::AnyQuery) -> Result<i64> {
    let row = query.fetch_one(&mut **tx).await.map_err(backend(op))?;
    get(&row, "n")
}

#[async_trait]
impl PushStore for SqlStore {
    async fn enqueue(
        &self,
        message: &PushMessageRecord,
        limits: PushLimits,
        now: Timestamp,
    ) -> Result<Enqueued> {
        const OP: &str = "enqueue push message";
        let registration = message.registration.clone();
        let mut tx = self.begin(OP).await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 8))")
                .bind(format!("push\n{registration}"))
                .execute(&mut *tx)
                .await
                .map_err(backend(OP))?;
        }
        sqlx::query("DELETE FROM push_messages WHERE registration = $1 AND expires_at <= $2")
            .bind(registration.clone())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend(OP))?;
        let outcome = match &message.collapse_key {
            Some(key) => {
                let mut replaced = sqlx::query(
                    "DELETE FROM push_messages WHERE registration = $1 AND kind = 'message' \
                     AND collapse_key = $2",
                )
                .bind(registration.clone())
                .bind(key.clone())
                .execute(&mut *tx)
                .await
                .map_err(backend(OP))?
                .rows_affected();
                let keys = scalar(
                    &mut tx,
                    OP,
                    sqlx::query(
                        "SELECT COUNT(DISTINCT collapse_key) AS n FROM push_messages \
                         WHERE registration = $1 AND kind = 'message' AND collapse_key IS NOT NULL",
                    )
                    .bind(registration.clone()),
                )
                .await?;
                if keys >= i64::from(limits.max_collapse_keys) {
                    replaced += sqlx::query(
                        "DELETE FROM push_messages WHERE seq = (SELECT MIN(seq) FROM push_messages \
                         WHERE registration = $1 AND kind = 'message' AND collapse_key IS NOT NULL)",
                    )
                    .bind(registration.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend(OP))?
                    .rows_affected();
                }
                insert(&mut tx, message, OP).await?;
                Enqueued::Stored { replaced }
            }
            None => {
                let waiting = scalar(
                    &mut tx,
                    OP,
                    sqlx::query(
                        "SELECT COUNT(*) AS n FROM push_messages \
                         WHERE registration = $1 AND kind = 'message' AND collapse_key IS NULL",
                    )
                    .bind(registration.clone()),
                )
                .await?;
                if waiting < i64::from(limits.max_non_collapsible) {
                    insert(&mut tx, message, OP).await?;
                    Enqueued::Stored { replaced: 0 }
                } else {
                    let before = scalar(
                        &mut tx,
                        OP,
                        sqlx::query(
                            "SELECT CAST(COALESCE(SUM(CASE WHEN kind = 'message' THEN 1 \
                             ELSE total_deleted END), 0) AS BIGINT) AS n \
                             FROM push_messages WHERE registration = $1",
                        )
                        .bind(registration.clone()),
                    )
                    .await?;
                    sqlx::query("DELETE FROM push_messages WHERE registration = $1")
                        .bind(registration.clone())
                        .execute(&mut *tx)
                        .await
                        .map_err(backend(OP))?;
                    let total_deleted = count_u64(before) + 1;
                    let notice = PushMessageRecord {
                        kind: PushMessageKind::DeletedMessages,
                        collapse_key: None,
                        payload: String::new(),
                        delay_while_idle: false,
                        total_deleted,
                        ..message.clone()
                    };
                    insert(&mut tx, &notice, OP).await?;
                    Enqueued::Overflowed { total_deleted }
                }
            }
        };
        tx.commit().await.map_err(backend(OP))?;
        Ok(outcome)
    }

    async fn pending(
        &self,
        registration: &str,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<PushMessageRecord>> {
        let rows = sqlx::query(
            "SELECT id, registration, sender, kind, collapse_key, payload, delay_while_idle, \
             total_deleted, created_at, expires_at FROM push_messages \
             WHERE registration = $1 AND expires_at > $2 ORDER BY seq LIMIT $3",
        )
        .bind(registration.to_owned())
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(backend("pending push messages"))?;
        rows.iter().map(message_from_row).collect()
    }

    async fn ack(&self, registration: &str, id: &str) -> Result<bool> {
        let query = sqlx::query("DELETE FROM push_messages WHERE registration = $1 AND id = $2")
            .bind(registration.to_owned())
            .bind(id.to_owned());
        Ok(self.write_rows("ack push message", query).await? == 1)
    }

    async fn clear(&self, registration: &str) -> Result<u64> {
        let query = sqlx::query("DELETE FROM push_messages WHERE registration = $1")
            .bind(registration.to_owned());
        self.write_rows("clear push messages", query).await
    }

    async fn sweep(&self, cutoff: Timestamp, batch: u32) -> Result<u64> {
        let query = sqlx::query(
            "DELETE FROM push_messages WHERE seq IN (SELECT seq FROM push_messages \
             WHERE expires_at < $1 LIMIT $2)",
        )
        .bind(cutoff)
        .bind(i64::from(batch.max(1)));
        self.write_rows("sweep push messages", query).await
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
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 8))")
                .bind(format!("push-topics\n{registration}"))
                .execute(&mut *tx)
                .await
                .map_err(backend(OP))?;
        }
        let already = scalar(
            &mut tx,
            OP,
            sqlx::query(
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
            sqlx::query("SELECT COUNT(*) AS n FROM push_topics WHERE registration = $1")
                .bind(registration.clone()),
        )
        .await?;
        if topics >= i64::from(max_topics) {
            tx.commit().await.map_err(backend(OP))?;
            return Ok(Subscribed::TooMany);
        }
        sqlx::query(
            "INSERT INTO push_topics (project_id, topic, registration, sealed_id, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(subscription.project_id.clone())
        .bind(subscription.topic.clone())
        .bind(registration)
        .bind(subscription.sealed_id.clone())
        .bind(subscription.created_at)
        .execute(&mut *tx)
        .await
        .map_err(backend(OP))?;
        tx.commit().await.map_err(backend(OP))?;
        Ok(Subscribed::Added)
    }

    async fn unsubscribe(&self, project_id: &str, topic: &str, registration: &str) -> Result<bool> {
        let query = sqlx::query(
            "DELETE FROM push_topics WHERE project_id = $1 AND topic = $2 AND registration = $3",
        )
        .bind(project_id.to_owned())
        .bind(topic.to_owned())
        .bind(registration.to_owned());
        Ok(self.write_rows("unsubscribe from push topic", query).await? == 1)
    }

    async fn unsubscribe_all(&self, registration: &str) -> Result<u64> {
        let query = sqlx::query("DELETE FROM push_topics WHERE registration = $1")
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
        let rows = sqlx::query(
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
