//! Removes expired, revoked and used credentials, and expired push messages, in bounded batches,
//! so no sweep holds the database for long.

use crate::{Ctx, Result};

/// Used and revoked rows are kept this long, so that a replay can still be recognised as one.
pub const RETAIN_SECS: i64 = 24 * 3600;

/// Sweeps dead sessions, then dead credentials, then push messages whose time to live passed
/// (stored for devices that never came back for them), each until a batch comes back short;
/// returns how many rows went.
pub async fn run_once(ctx: &Ctx, batch: u32) -> Result<u64> {
    let cutoff = ctx.now() - RETAIN_SECS;
    let mut total = 0;
    loop {
        let n = ctx.store.sessions().sweep(cutoff, batch).await?;
        total += n;
        if n < u64::from(batch) {
            break;
        }
        tokio::task::yield_now().await;
    }
    loop {
        let n = ctx.store.credentials().sweep(cutoff, batch).await?;
        total += n;
        if n < u64::from(batch) {
            break;
        }
        tokio::task::yield_now().await;
    }
    // A message expires when its time to live passes; nothing needs it kept longer.
    loop {
        let n = ctx.store.push().sweep(ctx.now(), batch).await?;
        total += n;
        if n < u64::from(batch) {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}
