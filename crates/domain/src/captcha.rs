//! CAPTCHA challenges: a picture and a spoken recording of the same characters, rendered when the
//! challenge is issued; the answer is kept only as a keyed digest, and each challenge takes one
//! guess.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tessera_crypto::captcha::Challenge;
use tessera_store::{CredentialKind, CredentialRecord};

use crate::{Ctx, Result, credentials};

/// The longest token or answer looked at; anything longer is wrong without a store lookup.
const MAX_INPUT: usize = 100;

/// A challenge ready to show: the token goes in the form, the picture and the recording are
/// fetched by token.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: String,
}

/// Draws a fresh challenge and stores it.
pub async fn issue(ctx: &Ctx) -> Result<Issued> {
    let challenge = tessera_crypto::captcha::new_challenge(ctx.rng.as_ref())
        .map_err(|err| crate::Error::Internal(err.to_string()))?;
    issue_challenge(ctx, &challenge).await
}

/// Stores a rendered challenge under a new token: the picture and the recording as they are, the
/// answer only as its keyed digest. Pages go through [`issue`], which draws the answer at random;
/// tests that must know an answer render one with `tessera_crypto::captcha::challenge_for`.
pub async fn issue_challenge(ctx: &Ctx, challenge: &Challenge) -> Result<Issued> {
    let (token, digest) = ctx.new_token();
    let now = ctx.now();
    let mut record = CredentialRecord::new(digest, CredentialKind::Captcha, now);
    record.expires_at = Some(now + ctx.policy.captcha_ttl_secs);
    record.data = credentials::encode(&CaptchaData {
        answer: answer_digest(ctx, &challenge.answer),
        png: STANDARD.encode(&challenge.png),
        audio: STANDARD.encode(&challenge.wav),
    })?;
    ctx.store.credentials().insert(&record).await?;
    Ok(Issued { token })
}

/// What the challenge looks and sounds like, while it is unanswered.
#[derive(Debug, Clone)]
pub struct Picture {
    pub png: Vec<u8>,
    /// The characters spoken, as a WAV file; empty for a challenge stored without one.
    pub wav: Vec<u8>,
}

pub async fn picture(ctx: &Ctx, token: &str) -> Result<Option<Picture>> {
    if token.len() > MAX_INPUT {
        return Ok(None);
    }
    let digest = tessera_crypto::digest::token_digest(token);
    let Some(record) = ctx.store.credentials().find_live(&digest, ctx.now()).await? else {
        return Ok(None);
    };
    if record.kind != CredentialKind::Captcha {
        return Ok(None);
    }
    let data: CaptchaData = credentials::data(&record);
    let bytes = |text: &str| STANDARD.decode(text).unwrap_or_default();
    Ok(Some(Picture { png: bytes(&data.png), wav: bytes(&data.audio) }))
}

/// Checks an answer. The challenge is consumed first, in one conditional update, whatever the
/// answer: each challenge gets one guess, however many arrive at once and on whichever node.
pub async fn check(ctx: &Ctx, token: &str, answer: &str) -> Result<bool> {
    if token.len() > MAX_INPUT {
        return Ok(false);
    }
    let digest = tessera_crypto::digest::token_digest(token);
    let Some(record) =
        ctx.store.credentials().consume(&digest, CredentialKind::Captcha, ctx.now()).await?
    else {
        return Ok(false);
    };
    if answer.len() > MAX_INPUT {
        return Ok(false);
    }
    let expected = credentials::data::<CaptchaData>(&record).answer;
    let given = answer_digest(ctx, answer);
    Ok(!expected.is_empty() && tessera_crypto::digest::ct_eq(expected.as_bytes(), given.as_bytes()))
}

/// A challenge's data: the answer as its keyed digest, the picture and the recording.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct CaptchaData {
    #[serde(default)]
    answer: String,
    #[serde(default)]
    png: String,
    #[serde(default)]
    audio: String,
}

fn answer_digest(ctx: &Ctx, answer: &str) -> String {
    ctx.pepper.keyed_digest("captcha", tessera_crypto::captcha::normalize_answer(answer).as_bytes())
}
