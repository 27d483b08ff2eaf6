//! CAPTCHA challenges: an image (and a spelled-out alternative for people who cannot see it) whose
//! answer is kept only as a keyed digest; each challenge is answered at most once.

use base64::Engine as _;
use serde_json::json;
use tessera_store::{CredentialKind, CredentialRecord};

use crate::{Ctx, Result};

/// A challenge ready to show: the token goes in the form, the image is fetched by token.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: String,
}

pub async fn issue(ctx: &Ctx) -> Result<Issued> {
    let challenge = tessera_crypto::captcha::new_challenge(ctx.rng.as_ref())
        .map_err(|err| crate::Error::Internal(err.to_string()))?;
    let (token, digest) = ctx.new_token();
    let now = ctx.now();
    let mut record = CredentialRecord::new(digest, CredentialKind::Captcha, now);
    record.expires_at = Some(now + ctx.policy.captcha_ttl_secs);
    let answer = ctx.pepper.keyed_digest(
        "captcha",
        tessera_crypto::captcha::normalize_answer(&challenge.answer).as_bytes(),
    );
    record.data = json!({
        "answer": answer,
        "png": base64::engine::general_purpose::STANDARD.encode(&challenge.png),
        "spoken": challenge.spoken,
    })
    .to_string();
    ctx.store.credentials().insert(&record).await?;
    Ok(Issued { token })
}

/// What the challenge looks like, while it is unanswered.
#[derive(Debug, Clone)]
pub struct Picture {
    pub png: Vec<u8>,
    pub spoken: String,
}

pub async fn picture(ctx: &Ctx, token: &str) -> Result<Option<Picture>> {
    if token.len() > 100 {
        return Ok(None);
    }
    let digest = tessera_crypto::digest::token_digest(token);
    let Some(record) = ctx.store.credentials().find_live(&digest, ctx.now()).await? else {
        return Ok(None);
    };
    if record.kind != CredentialKind::Captcha {
        return Ok(None);
    }
    let data: serde_json::Value = serde_json::from_str(&record.data).unwrap_or_default();
    let png = data["png"]
        .as_str()
        .and_then(|it| base64::engine::general_purpose::STANDARD.decode(it).ok())
        .unwrap_or_default();
    let spoken = data["spoken"].as_str().unwrap_or_default().to_owned();
    Ok(Some(Picture { png, spoken }))
}

/// Checks an answer. The challenge is used up whatever the answer, so each one gets one guess.
pub async fn check(ctx: &Ctx, token: &str, answer: &str) -> Result<bool> {
    if token.len() > 100 || answer.len() > 100 {
        return Ok(false);
    }
    let digest = tessera_crypto::digest::token_digest(token);
    let Some(record) =
        ctx.store.credentials().consume(&digest, CredentialKind::Captcha, ctx.now()).await?
    else {
        return Ok(false);
    };
    let data: serde_json::Value = serde_json::from_str(&record.data).unwrap_or_default();
    let expected = data["answer"].as_str().unwrap_or_default();
    let given = ctx
        .pepper
        .keyed_digest("captcha", tessera_crypto::captcha::normalize_answer(answer).as_bytes());
    Ok(!expected.is_empty() && tessera_crypto::digest::ct_eq(expected.as_bytes(), given.as_bytes()))
}
