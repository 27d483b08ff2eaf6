//! The signing key ring: keys are generated here, stored sealed with the key-encryption key, and
//! move from next (published) to active (signing) to retired (published until their tokens expire).

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

/// Makes sure an active key and a published next key exist. Returns true when it created any.
pub async fn ensure(ctx: &Ctx) -> Result<bool> {
    let keys = ctx.store.keys().list().await?;
    let mut created = false;
    if !keys.iter().any(|it| it.state == KeyState::Active) {
        ctx.store.keys().insert(&new_record(ctx, KeyAlg::Rs256, KeyState::Active)?).await?;
        created = true;
    }
    if !keys.iter().any(|it| it.state == KeyState::Next) {
        ctx.store.keys().insert(&new_record(ctx, KeyAlg::Rs256, KeyState::Next)?).await?;
        created = true;
    }
    if created {
        audit::record(ctx, "keys.generate", None, &Actor::System, "", json!({})).await?;
    }
    Ok(created)
}

pub async fn list(ctx: &Ctx) -> Result<Vec<KeyRecord>> {
    Ok(ctx.store.keys().list().await?)
}

/// Retires the active key, promotes the published next key, and publishes a new next key.
pub async fn rotate(ctx: &Ctx, actor: &Actor) -> Result<()> {
    ensure(ctx).await?;
    let keys = ctx.store.keys().list().await?;
    let now = ctx.now();
    for key in keys.iter().filter(|it| it.state == KeyState::Active) {
        ctx.store.keys().set_state(&key.kid, KeyState::Retired, now).await?;
    }
    for key in keys.iter().filter(|it| it.state == KeyState::Next) {
        ctx.store.keys().set_state(&key.kid, KeyState::Active, now).await?;
    }
    ctx.store.keys().insert(&new_record(ctx, KeyAlg::Rs256, KeyState::Next)?).await?;
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
