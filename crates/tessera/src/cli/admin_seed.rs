//! `tessera admin dev seed`: bulk fixtures for the benchmark harness, written through the store.

use anyhow::format_err;
use serde_json::{Value, json};
use tessera_domain::Ctx;
use tessera_domain::accounts::NewAccount;
use tessera_domain::audit::Actor;
use tessera_domain::sessions::ClientInfo;
use tessera_store::{AccountState, CredentialKind, CredentialRecord};

pub(crate) const BENCH_EMAIL: &str = "bench@example.test";
pub(crate) const BENCH_PASSWORD: &str = "bench-password-1";

/// Seeds `sessions` live sessions and `credentials` opaque access tokens for the bench account and
/// returns up to 1000 sample session cookies.
pub(crate) async fn seed(ctx: &Ctx, sessions: u64, credentials: u64) -> anyhow::Result<Value> {
    let account = match tessera_domain::accounts::find_by_email(ctx, BENCH_EMAIL).await {
        Ok(account) => account,
        Err(_) => {
            let new = NewAccount {
                email: BENCH_EMAIL.to_owned(),
                name: "Bench".to_owned(),
                domain: None,
                password: Some(BENCH_PASSWORD.to_owned()),
                is_admin: false,
                state: AccountState::Active,
            };
            tessera_domain::accounts::create(ctx, new, &Actor::Cli, "").await?
        }
    };
    let client = ClientInfo { ip: "127.0.0.1".to_owned(), user_agent: "bench".to_owned() };
    let mut samples = Vec::new();
    for i in 0..sessions {
        let (token, _) =
            tessera_domain::sessions::create(ctx, &account, true, false, &client).await?;
        if i < 1000 {
            samples.push(token);
        }
    }
    let now = ctx.now();
    for _ in 0..credentials {
        let (_, digest) = ctx.new_token();
        let mut record = CredentialRecord::new(digest, CredentialKind::AccessToken, now);
        record.account_id = Some(account.id.clone());
        record.expires_at = Some(now + 3600);
        ctx.store
            .credentials()
            .insert(&record)
            .await
            .map_err(|err| format_err!("seeding: {err}"))?;
    }
    Ok(json!({
        "account_email": BENCH_EMAIL,
        "password": BENCH_PASSWORD,
        "cookie_name": "TSID",
        "session_cookies": samples,
    }))
}
