//! Group commit of credential inserts.
//!
//! Every issued token is a row, and a row committed alone costs a commit each: on SQLite a trip to
//! the one writer connection's worker thread, on PostgreSQL a WAL flush that the connection waits
//! for (a few milliseconds on a virtual disk, so that a pool of 8 connections caps a node at about
//! 8 tokens per flush). Here one task owns the inserts: it takes every insert that is waiting (up
//! to [`MAX_BATCH`]) and writes them in one transaction, so that many concurrent token issues share
//! one commit. Each caller still returns only once its own row is
//! committed, so nothing issued is lost. No timer holds an insert back: under light load a batch is
//! one row, and batches grow only while the previous commit is running.
//!
//! When a batch fails (a duplicate digest, a foreign key that a concurrent delete broke), its rows
//! are inserted again one by one, so that each caller gets the answer its own row deserves.

use sqlx::AnyPool;
use tessera_store::{CredentialRecord, Result, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::Backend;
use crate::credentials::{insert_credential, insert_credentials};
use crate::error::{backend, insert};

/// The most inserts one transaction takes.
const MAX_BATCH: usize = 64;

/// How many inserts may wait before callers wait to enqueue.
const QUEUE: usize = 1024;

type Job = (CredentialRecord, oneshot::Sender<Result<()>>);

/// The handle callers insert through; the task ends when the last handle is dropped.
#[derive(Debug)]
pub(crate) struct InsertQueue {
    jobs: mpsc::Sender<Job>,
}

impl InsertQueue {
    /// Starts the task on the current tokio runtime, writing through `write` (the writer pool).
    pub(crate) fn start(write: AnyPool, backend: Backend) -> InsertQueue {
        let (jobs, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(write, backend, receiver));
        InsertQueue { jobs }
    }

    /// Inserts `credential` and waits until it is committed.
    pub(crate) async fn insert(&self, credential: CredentialRecord) -> Result<()> {
        let closed =
            || StoreError::Backend("insert credential: the insert queue stopped".to_owned());
        let (done, answer) = oneshot::channel();
        self.jobs.send((credential, done)).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

async fn run(write: AnyPool, backend: Backend, mut receiver: mpsc::Receiver<Job>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let batch = jobs.len();
        if batch > 1 && commit_together(&write, backend, &jobs).await.is_ok() {
            for (_, done) in jobs.drain(..) {
                // The caller may have gone away (a closed connection); its row stays committed.
                let _ = done.send(Ok(()));
            }
            continue;
        }
        for (credential, done) in jobs.drain(..) {
            let outcome =
                insert_credential(&write, &credential).await.map_err(insert("insert credential"));
            let _ = done.send(outcome);
        }
    }
}

/// All rows in one transaction, or none.
async fn commit_together(write: &AnyPool, kind: Backend, jobs: &[Job]) -> Result<()> {
    const OP: &str = "insert credentials";
    let mut tx = crate::begin_on(write, kind).await.map_err(backend(OP))?;
    let rows: Vec<&CredentialRecord> = jobs.iter().map(|(credential, _)| credential).collect();
    insert_credentials(&mut tx, kind, &rows).await?;
    tx.commit().await.map_err(backend(OP))
}
