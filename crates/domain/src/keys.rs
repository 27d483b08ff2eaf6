//! The signing key ring: keys are generated here, stored sealed with the key-encryption key, and
//! move from next (published) to active (signing) to retired (published until their tokens expire).
//!
//! Every token endpoint signs or verifies, so the ring is read from the store once and kept, with
//! the active key already opened ([`ring`]). A change made through this process is seen at once;
//! one made by another node (or the admin CLI) within [`RING_TTL_SECS`] of the [`Ctx`] clock, which
//! also dates each copy (the domain reads no clock of its own). That delay is harmless by
//! construction: a next key is published a whole rotation before it signs, a retired key stays
//! published until its tokens expire, and a token naming a key this process has not seen makes it
//! read the ring again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use serde_json::json;
use tessera_crypto::keys::{KeyAlg, SigningKey};
use tessera_store::{KeyRecord, KeyState};

use crate::audit::{self, Actor};
use crate::{Ctx, Error, Result};

fn aad(kid: &str) -> Vec<u8> {
    format!("signing-key:{kid}").into_bytes()
}

fn new_record(ctx: &Ctx, alg: KeyAlg, state: KeyState) -> Result<KeyRecord> {
    let key = SigningKey::generate(alg).map_err(|err| Error::Internal(err.to_string()))?;
    let public = key.public_key_der();
    let kid = tessera_crypto::digest::sha256_hex(&public)[..16].to_owned();
    let now = ctx.now();
    Ok(KeyRecord {
        private_enc: ctx
            .kek
            .seal(ctx.rng.as_ref(), &aad(&kid), key.pkcs8_der())
            .map_err(|err| Error::Internal(err.to_string()))?,
        public_der: base64::engine::general_purpose::STANDARD.encode(&public),
        kid,
        alg: alg.as_str().to_owned(),
        state,
        created_at: now,
        activated_at: (state == KeyState::Active).then_some(now),
        retired_at: None,
    })
}

/// The algorithms the ring holds keys for: RS256 signs ID tokens (what every OpenID Connect client
/// accepts), ES256 signs RFC 9068 access tokens (thirty times cheaper to sign).
pub const RING_ALGS: [KeyAlg; 2] = [KeyAlg::Rs256, KeyAlg::Es256];

/// Makes sure each algorithm of [`RING_ALGS`] has an active key and a published next key.
/// Returns true when it created any.
pub async fn ensure(ctx: &Ctx) -> Result<bool> {
    let keys = ctx.store.keys().list().await?;
    let mut created = false;
    for alg in RING_ALGS {
        for state in [KeyState::Active, KeyState::Next] {
            if !keys.iter().any(|it| it.state == state && it.alg == alg.as_str()) {
                ctx.store.keys().insert(&new_record(ctx, alg, state)?).await?;
                created = true;
            }
        }
    }
    if created {
        ctx.key_ring.forget();
        audit::record(ctx, "keys.generate", None, &Actor::System, "", json!({})).await?;
    }
    Ok(created)
}

pub async fn list(ctx: &Ctx) -> Result<Vec<KeyRecord>> {
    Ok(ctx.store.keys().list().await?)
}

/// For each algorithm: retires the active key, promotes the published next key, and publishes a
/// new next key.
pub async fn rotate(ctx: &Ctx, actor: &Actor) -> Result<()> {
    ensure(ctx).await?;
    let keys = ctx.store.keys().list().await?;
    let now = ctx.now();
    for alg in RING_ALGS {
        let of_alg = |state: KeyState| {
            keys.iter().filter(move |it| it.state == state && it.alg == alg.as_str())
        };
        for key in of_alg(KeyState::Active) {
            ctx.store.keys().set_state(&key.kid, KeyState::Retired, now).await?;
        }
        for key in of_alg(KeyState::Next) {
            ctx.store.keys().set_state(&key.kid, KeyState::Active, now).await?;
        }
        ctx.store.keys().insert(&new_record(ctx, alg, KeyState::Next)?).await?;
    }
    ctx.key_ring.forget();
    audit::record(ctx, "keys.rotate", None, actor, "", json!({})).await
}

/// Opens a stored key for signing.
pub fn open(ctx: &Ctx, record: &KeyRecord) -> Result<SigningKey> {
    let alg = KeyAlg::parse(&record.alg)
        .map_err(|_| Error::Internal(format!("unknown key algorithm {}", record.alg)))?;
    let der = ctx
        .kek
        .open(&aad(&record.kid), &record.private_enc)
        .map_err(|_| Error::Internal("signing key does not open".to_owned()))?;
    SigningKey::from_pkcs8(alg, &der).map_err(|err| Error::Internal(err.to_string()))
}

/// How long (in seconds of the [`Ctx`] clock) a process signs and verifies with its copy of the
/// ring before reading it again.
pub const RING_TTL_SECS: i64 = 5;

/// A token naming a key this process does not know re-reads the ring at most once in this many
/// seconds, so that made-up key ids cannot turn every request into a store read.
pub const UNKNOWN_KID_RELOAD_SECS: i64 = 1;

/// The key that signs now for one algorithm, opened; or why there is none.
type Signer = std::result::Result<(KeyRecord, Arc<SigningKey>), String>;

/// The key ring as this process last read it.
pub struct Ring {
    pub records: Vec<KeyRecord>,
    /// Per algorithm of [`RING_ALGS`], the most recently activated active key.
    signers: Vec<(KeyAlg, Signer)>,
    /// When this copy was read, by the [`Ctx`] clock (unix seconds).
    loaded: i64,
}

impl Ring {
    /// The active key of `alg` and its opened private half.
    pub fn signer(&self, alg: KeyAlg) -> Result<(&KeyRecord, &SigningKey)> {
        match self.signers.iter().find(|(it, _)| *it == alg).map(|(_, signer)| signer) {
            Some(Ok((record, key))) => Ok((record, key)),
            Some(Err(why)) => Err(Error::Internal(why.clone())),
            None => Err(Error::Internal(format!("no {alg} key in the ring"))),
        }
    }

    pub fn get(&self, kid: &str) -> Option<&KeyRecord> {
        self.records.iter().find(|it| it.kid == kid)
    }

    /// Whether this copy was read less than `max_age` seconds before `now`. A copy dated after
    /// `now` (the clock was set back) is not fresh: it is read again rather than kept for ever.
    fn fresh(&self, now: i64, max_age: i64) -> bool {
        (0..max_age).contains(&now.saturating_sub(self.loaded))
    }
}

/// The process's copy of the ring; one per [`Ctx`], shared by its clones.
#[derive(Default)]
pub struct RingCache {
    current: RwLock<Option<Arc<Ring>>>,
    /// The copy before it went stale, whose opened keys a reload reuses.
    last: RwLock<Option<Arc<Ring>>>,
    /// Bumped by every local change, so that a read that began before it is not kept.
    generation: AtomicU64,
    /// One reload at a time: requests that find the copy stale together wait for one store read.
    reloading: tokio::sync::Mutex<()>,
}

impl RingCache {
    /// Drops the copy; the next use reads the store.
    pub fn forget(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut current) = self.current.write() {
            *current = None;
        }
    }

    fn cached(&self, now: i64, max_age: i64) -> Option<Arc<Ring>> {
        let current = self.current.read().ok()?;
        current.as_ref().filter(|ring| ring.fresh(now, max_age)).cloned()
    }
}

/// The key ring, from this process's copy while it is fresh.
pub async fn ring(ctx: &Ctx) -> Result<Arc<Ring>> {
    match ctx.key_ring.cached(ctx.now(), RING_TTL_SECS) {
        Some(ring) => Ok(ring),
        None => reload(ctx, RING_TTL_SECS).await,
    }
}

/// The key ring, read again first when it does not know `kid` and was not read a moment ago.
pub async fn ring_knowing(ctx: &Ctx, kid: &str) -> Result<Arc<Ring>> {
    let ring = ring(ctx).await?;
    if ring.get(kid).is_some() || ring.fresh(ctx.now(), UNKNOWN_KID_RELOAD_SECS) {
        return Ok(ring);
    }
    reload(ctx, UNKNOWN_KID_RELOAD_SECS).await
}

/// Reads the ring from the store, unless another request did so while this one waited its turn
/// (a copy younger than `fresh` is taken as it is). Keys already opened are reused.
async fn reload(ctx: &Ctx, fresh: i64) -> Result<Arc<Ring>> {
    let _turn = ctx.key_ring.reloading.lock().await;
    let now = ctx.now();
    if let Some(ring) = ctx.key_ring.cached(now, fresh.min(UNKNOWN_KID_RELOAD_SECS)) {
        return Ok(ring);
    }
    let generation = ctx.key_ring.generation.load(Ordering::SeqCst);
    let previous = ctx.key_ring.last.read().ok().and_then(|it| it.clone());
    let opened = |record: &KeyRecord| {
        previous.as_ref().and_then(|ring| {
            ring.signers.iter().find_map(|(_, signer)| {
                signer
                    .as_ref()
                    .ok()
                    .filter(|(it, _)| it.kid == record.kid)
                    .map(|(_, key)| Arc::clone(key))
            })
        })
    };
    let records = ctx.store.keys().list().await?;
    let signers = RING_ALGS
        .iter()
        .map(|&alg| {
            let signer = records
                .iter()
                .filter(|it| it.state == KeyState::Active && it.alg == alg.as_str())
                .max_by_key(|it| it.activated_at.unwrap_or(it.created_at))
                .ok_or_else(|| format!("no active {alg} signing key"))
                .and_then(|record| match opened(record) {
                    Some(key) => Ok((record.clone(), key)),
                    None => match open(ctx, record) {
                        Ok(key) => Ok((record.clone(), Arc::new(key))),
                        Err(err) => Err(err.to_string()),
                    },
                });
            (alg, signer)
        })
        .collect();
    let ring = Arc::new(Ring { records, signers, loaded: now });
    if let Ok(mut current) = ctx.key_ring.current.write()
        && ctx.key_ring.generation.load(Ordering::SeqCst) == generation
    {
        *current = Some(Arc::clone(&ring));
    }
    if let Ok(mut last) = ctx.key_ring.last.write() {
        *last = Some(Arc::clone(&ring));
    }
    Ok(ring)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestCtx;

    /// A key another node wrote: in the store, but this process was not told.
    async fn insert_elsewhere(t: &TestCtx) -> KeyRecord {
        let record = new_record(&t.ctx, KeyAlg::Es256, KeyState::Next).unwrap();
        t.ctx.store.keys().insert(&record).await.unwrap();
        record
    }

    #[tokio::test]
    async fn another_nodes_change_is_seen_once_the_copy_is_five_seconds_old() {
        let t = TestCtx::new().await;
        ensure(&t.ctx).await.unwrap();
        let first = ring(&t.ctx).await.unwrap();
        assert_eq!(first.records.len(), 4, "an active and a next key per algorithm");
        let elsewhere = insert_elsewhere(&t).await;
        t.advance(RING_TTL_SECS - 1);
        let kept = ring(&t.ctx).await.unwrap();
        assert!(Arc::ptr_eq(&first, &kept), "the copy is kept while fresh");
        assert!(kept.get(&elsewhere.kid).is_none());
        t.advance(1);
        let reread = ring(&t.ctx).await.unwrap();
        assert!(reread.get(&elsewhere.kid).is_some(), "read again after {RING_TTL_SECS} s");
        assert_eq!(reread.records.len(), 5);
    }

    #[tokio::test]
    async fn a_local_change_is_seen_at_once() {
        let t = TestCtx::new().await;
        ensure(&t.ctx).await.unwrap();
        let before = ring(&t.ctx).await.unwrap();
        let (active, _) = before.signer(KeyAlg::Rs256).unwrap();
        let active = active.kid.clone();
        rotate(&t.ctx, &Actor::Cli).await.unwrap();
        let after = ring(&t.ctx).await.unwrap();
        assert_eq!(after.records.len(), 6, "retired, active and next per algorithm");
        let (now_active, _) = after.signer(KeyAlg::Rs256).unwrap();
        assert_ne!(now_active.kid, active, "the clock did not move, the rotation shows anyway");
        assert_eq!(after.get(&active).map(|it| it.state), Some(KeyState::Retired));
    }

    #[tokio::test]
    async fn an_unknown_kid_rereads_at_most_once_a_second() {
        let t = TestCtx::new().await;
        ensure(&t.ctx).await.unwrap();
        let first = ring(&t.ctx).await.unwrap();
        let elsewhere = insert_elsewhere(&t).await;
        // Within the second the copy was read: not again, whatever kid a token names.
        let same = ring_knowing(&t.ctx, &elsewhere.kid).await.unwrap();
        assert!(Arc::ptr_eq(&first, &same));
        t.advance(UNKNOWN_KID_RELOAD_SECS);
        let reread = ring_knowing(&t.ctx, &elsewhere.kid).await.unwrap();
        assert!(reread.get(&elsewhere.kid).is_some(), "a second later the kid is looked up");
        // A made-up kid right after that read does not read again.
        let made_up = ring_knowing(&t.ctx, "no-such-kid").await.unwrap();
        assert!(Arc::ptr_eq(&reread, &made_up));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_unknown_kids_reads_the_store_once() {
        let t = TestCtx::new().await;
        ensure(&t.ctx).await.unwrap();
        let first = ring(&t.ctx).await.unwrap();
        let elsewhere = insert_elsewhere(&t).await;
        t.advance(UNKNOWN_KID_RELOAD_SECS);
        let mut burst = tokio::task::JoinSet::new();
        for i in 0..64 {
            let ctx = t.ctx.clone();
            let kid = if i % 2 == 0 { elsewhere.kid.clone() } else { format!("made-up-{i}") };
            burst.spawn(async move { ring_knowing(&ctx, &kid).await.unwrap() });
        }
        let rings: Vec<Arc<Ring>> = burst.join_all().await;
        // Every store read makes a new copy: one copy shared by all means one read.
        let reread = &rings[0];
        assert!(!Arc::ptr_eq(reread, &first));
        assert!(reread.get(&elsewhere.kid).is_some());
        assert!(rings.iter().all(|it| Arc::ptr_eq(it, reread)), "one reload for the whole burst");
    }

    #[tokio::test]
    async fn a_clock_set_back_does_not_keep_the_copy_for_ever() {
        let t = TestCtx::new().await;
        ensure(&t.ctx).await.unwrap();
        ring(&t.ctx).await.unwrap();
        let elsewhere = insert_elsewhere(&t).await;
        t.advance(-60);
        let reread = ring(&t.ctx).await.unwrap();
        assert!(reread.get(&elsewhere.kid).is_some());
    }
}
