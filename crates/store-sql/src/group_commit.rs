//! Group commit: writes that many callers make at once share one transaction.
//!
//! A write committed alone costs a commit each: on PostgreSQL a WAL flush that the connection
//! waits for (a few milliseconds on a virtual disk, so that a pool of 8 connections caps a node at
//! about 8 writes per flush). (On SQLite every write transaction already commits in a group with
//! those waiting beside it, `db::sqlite`; these queues add multi-row statements.) Here one
//! task per kind of write owns those writes: it takes every write that is waiting (up to the
//! kind's batch) and makes them in one transaction, so that many concurrent callers share one
//! commit. On PostgreSQL a batch is one multi-row statement, which commits as a transaction of
//! its own: no `BEGIN` and `COMMIT` round trips around it. Each caller still returns only once its own write is committed, so nothing
//! acknowledged is lost. No timer holds a write back: under light load a batch is one write, and
//! batches grow while the previous commit is running and by what the tasks ready on the queue's
//! thread enqueue when it lets them run once before closing a batch (on SQLite a commit writes
//! every page it changed, the same few pages for one row or for sixty).
//!
//! When a batch fails (a duplicate digest, a foreign key that a concurrent delete broke), its
//! writes are made again one by one, so that each caller gets the answer its own write deserves.
//!
//! The kinds: credential inserts ([`CredentialInserts`]: every issued token is a row), single-use
//! inserts on PostgreSQL ([`CredentialOnce`]: every OAuth 1.0 signed call records its nonce, and
//! is refused if the nonce was recorded before) and push acknowledgements ([`PushAcks`]: every
//! delivered message is deleted when the device confirms it).

use std::collections::HashSet;
use std::future::Future;

use tessera_store::{CredentialRecord, Result, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::Backend;
use crate::credentials::{
    ROWS_PER_INSERT, insert_credential, insert_credential_once, insert_credentials,
    insert_credentials_in_one_statement, insert_credentials_once,
    insert_credentials_once_in_one_statement,
};
use crate::db::Db;
use crate::error::{backend, insert};

/// How many writes may wait before callers wait to enqueue.
const QUEUE: usize = 1024;

/// A kind of write that commits in groups.
pub(crate) trait GroupWrite: Send + Sync + 'static {
    type Item: Send + 'static;
    type Answer: Send + 'static;
    /// The operation's name, for errors.
    const OP: &'static str;
    /// The most writes one transaction takes.
    const MAX_BATCH: usize;
    /// Makes every write in one transaction, or none; one answer per write, in order.
    fn together(
        write: &Db,
        backend: Backend,
        items: &[Self::Item],
    ) -> impl Future<Output = Result<Vec<Self::Answer>>> + Send;
    /// Makes one write on its own.
    fn alone(
        write: &Db,
        backend: Backend,
        item: &Self::Item,
    ) -> impl Future<Output = Result<Self::Answer>> + Send;
}

type Job<W> = (<W as GroupWrite>::Item, oneshot::Sender<Result<<W as GroupWrite>::Answer>>);

/// The handle callers write through; the task ends when the last handle is dropped.
#[derive(Debug)]
pub(crate) struct Queue<W: GroupWrite> {
    jobs: mpsc::Sender<Job<W>>,
}

impl<W: GroupWrite> Queue<W> {
    /// Starts the task on the current tokio runtime, writing through `write` (the writer pool).
    pub(crate) fn start(write: Db, backend: Backend) -> Queue<W> {
        let (jobs, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run::<W>(write, backend, receiver));
        Queue { jobs }
    }

    /// Makes the write and waits until it is committed.
    pub(crate) async fn write(&self, item: W::Item) -> Result<W::Answer> {
        let closed = || StoreError::Backend(format!("{}: the write queue stopped", W::OP));
        let (done, answer) = oneshot::channel();
        self.jobs.send((item, done)).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

async fn run<W: GroupWrite>(write: Db, backend: Backend, mut receiver: mpsc::Receiver<Job<W>>) {
    let mut jobs: Vec<Job<W>> = Vec::with_capacity(W::MAX_BATCH);
    while receiver.recv_many(&mut jobs, W::MAX_BATCH).await > 0 {
        // Let the tasks that are ready on this thread run once (callers about to enqueue their
        // own writes) before the batch closes: a commit costs its pages whatever the number of
        // rows, and under load the writes in flight then share it. Nothing waits on a timer;
        // with no other task ready this returns at once.
        if jobs.len() < W::MAX_BATCH {
            tokio::task::yield_now().await;
            while jobs.len() < W::MAX_BATCH {
                let Ok(job) = receiver.try_recv() else { break };
                jobs.push(job);
            }
        }
        if jobs.len() > 1 {
            let (items, answers): (Vec<W::Item>, Vec<_>) = jobs.drain(..).unzip();
            match W::together(&write, backend, &items).await {
                Ok(done) if done.len() == items.len() => {
                    for (answer, done) in answers.into_iter().zip(done) {
                        // The caller may have gone away (a closed connection); its write stays.
                        let _ = answer.send(Ok(done));
                    }
                    continue;
                }
                _ => jobs.extend(items.into_iter().zip(answers)),
            }
        }
        for (item, answer) in jobs.drain(..) {
            let _ = answer.send(W::alone(&write, backend, &item).await);
        }
    }
}

/// Credential inserts.
#[derive(Debug)]
pub(crate) struct CredentialInserts;

impl GroupWrite for CredentialInserts {
    type Item = CredentialRecord;
    type Answer = ();
    const OP: &'static str = "insert credentials";
    const MAX_BATCH: usize = ROWS_PER_INSERT;

    async fn together(write: &Db, kind: Backend, items: &[CredentialRecord]) -> Result<Vec<()>> {
        let rows: Vec<&CredentialRecord> = items.iter().collect();
        if kind == Backend::Postgres {
            insert_credentials_in_one_statement(write, &rows).await?;
            return Ok(vec![(); items.len()]);
        }
        let mut tx = write.begin(false).await.map_err(backend(Self::OP))?;
        insert_credentials(&mut tx, kind, &rows).await?;
        tx.commit().await.map_err(backend(Self::OP))?;
        Ok(vec![(); items.len()])
    }

    async fn alone(write: &Db, _: Backend, item: &CredentialRecord) -> Result<()> {
        insert_credential(write, item).await.map_err(insert("insert credential"))
    }
}

/// Single-use inserts: the answer is whether the row was written, `false` when a row with its
/// digest exists. A batch is written by multi-row `INSERT … ON CONFLICT (digest) DO NOTHING
/// RETURNING digest`: the digests it returns are the rows written. Of several inserts with one
/// digest in a batch only the first is sent (the others are answered `false`), and of two in
/// transactions on any nodes the later waits on the earlier's key and then writes nothing.
#[derive(Debug)]
pub(crate) struct CredentialOnce;

impl GroupWrite for CredentialOnce {
    type Item = CredentialRecord;
    type Answer = bool;
    const OP: &'static str = "insert credential once";
    const MAX_BATCH: usize = ROWS_PER_INSERT;

    async fn together(write: &Db, kind: Backend, items: &[CredentialRecord]) -> Result<Vec<bool>> {
        let mut seen = HashSet::with_capacity(items.len());
        let first: Vec<&CredentialRecord> =
            items.iter().filter(|it| seen.insert(it.digest.as_str())).collect();
        let written = match kind {
            Backend::Postgres => insert_credentials_once_in_one_statement(write, &first).await?,
            Backend::Sqlite => {
                let mut tx = write.begin(false).await.map_err(backend(Self::OP))?;
                let written = insert_credentials_once(&mut tx, kind, &first).await?;
                tx.commit().await.map_err(backend(Self::OP))?;
                written
            }
        };
        // Each digest written answers `true` once: to the first insert that named it.
        let mut unanswered: HashSet<&str> = written.iter().map(String::as_str).collect();
        Ok(items.iter().map(|it| unanswered.remove(it.digest.as_str())).collect())
    }

    async fn alone(write: &Db, _: Backend, item: &CredentialRecord) -> Result<bool> {
        insert_credential_once(write, item).await.map_err(insert(Self::OP))
    }
}

/// Push acknowledgements: a registration's digest and a message id; the answer is whether the
/// message was stored.
#[derive(Debug)]
pub(crate) struct PushAcks;

impl GroupWrite for PushAcks {
    type Item = (String, String);
    type Answer = bool;
    const OP: &'static str = "ack push message";
    const MAX_BATCH: usize = crate::push::ACKS_PER_STATEMENT;

    async fn together(write: &Db, kind: Backend, items: &[(String, String)]) -> Result<Vec<bool>> {
        match kind {
            // One statement for the batch, a transaction of its own: a round trip to the server
            // per acknowledgement was most of what the batch cost.
            Backend::Postgres => {
                let mut unanswered = crate::push::ack_many(write, items, Self::OP).await?;
                // A message acknowledged twice in the batch answers `true` to the first.
                Ok(items.iter().map(|it| unanswered.remove(it)).collect())
            }
            // In process, a statement costs no round trip.
            Backend::Sqlite => {
                let mut tx = write.begin(false).await.map_err(backend(Self::OP))?;
                let mut done = Vec::with_capacity(items.len());
                for (registration, id) in items {
                    let deleted = crate::push::ack_query(registration, id)
                        .execute(&mut tx)
                        .await
                        .map_err(backend(Self::OP))?;
                    done.push(deleted.rows_affected() == 1);
                }
                tx.commit().await.map_err(backend(Self::OP))?;
                Ok(done)
            }
        }
    }

    async fn alone(write: &Db, _: Backend, (registration, id): &(String, String)) -> Result<bool> {
        let deleted = crate::push::ack_query(registration, id)
            .execute(write)
            .await
            .map_err(backend(Self::OP))?;
        Ok(deleted.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use tessera_store::{CredentialKind, CredentialRecord};

    use super::*;
    use crate::{ConnectOptions, SqlStore};

    /// A batch of single-use inserts with repeated digests and one already stored: each digest
    /// is written once, and the answer goes to the first insert that named it. On SQLite, and on
    /// PostgreSQL (where the store uses the queue) when a server is named.
    #[tokio::test]
    async fn a_batch_of_single_use_inserts_answers_each_insert_its_own() {
        let dir = tempfile::tempdir().expect("temporary directory");
        batch_of_single_use_inserts(SqlStore::sqlite_path_url(&dir.path().join("once.db"))).await;
        crate::plans_tests::in_a_database_of_its_own("tessera_once", batch_of_single_use_inserts)
            .await;
    }

    /// A batch of push acknowledgements with a repeat, another registration's message id and an
    /// unknown one: each message is removed once, and the answer goes to the first that named it.
    /// On SQLite, and on PostgreSQL (one statement for the batch) when a server is named.
    #[tokio::test]
    async fn a_batch_of_push_acks_answers_each_ack_its_own() {
        let dir = tempfile::tempdir().expect("temporary directory");
        batch_of_push_acks(SqlStore::sqlite_path_url(&dir.path().join("acks.db"))).await;
        crate::plans_tests::in_a_database_of_its_own("tessera_acks", batch_of_push_acks).await;
    }

    async fn batch_of_push_acks(url: String) {
        use tessera_store::testsuite::{NOW, push_message};
        use tessera_store::{PushLimits, Store as _};

        let store = SqlStore::connect(&url, &ConnectOptions::default()).await.expect("connect");
        store.migrate().await.expect("migrate");
        let stored = [
            push_message("a", "r1", None),
            push_message("b", "r1", None),
            push_message("c", "r2", None),
        ];
        let limits = PushLimits { max_collapse_keys: 4, max_non_collapsible: 100 };
        store.push().enqueue_many(&stored, limits, NOW).await.expect("enqueue");
        let ack = |registration: &str, id: &str| (registration.to_owned(), id.to_owned());
        let items = [
            ack("r1", "a"),
            ack("r1", "a"),
            ack("r2", "a"),
            ack("r1", "b"),
            ack("r3", "x"),
            ack("r2", "c"),
        ];
        let answers = PushAcks::together(&store.write, store.backend, &items).await.expect("batch");
        assert_eq!(answers, [true, false, false, true, false, true]);
        for registration in ["r1", "r2"] {
            let left = store.push().pending(registration, NOW, 10).await.expect("pending");
            assert!(left.is_empty(), "{registration}: {left:?}");
        }
        store.close().await;
    }

    async fn batch_of_single_use_inserts(url: String) {
        let store = SqlStore::connect(&url, &ConnectOptions::default()).await.expect("connect");
        store.migrate().await.expect("migrate");
        let nonce =
            |digest: &str| CredentialRecord::new(digest.to_owned(), CredentialKind::Nonce, 5);
        assert!(CredentialOnce::alone(&store.write, store.backend, &nonce("a")).await.expect("a"));
        let items = ["a", "b", "b", "c", "a", "c"].map(nonce);
        let answers =
            CredentialOnce::together(&store.write, store.backend, &items).await.expect("batch");
        assert_eq!(answers, [false, true, false, true, false, false]);
        store.close().await;
    }
}
