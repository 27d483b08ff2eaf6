//! The JWT bearer walk (RFC 7523, service accounts): the playground's service account in the
//! developer's project gets a key pair as the console makes one (the private key handed out once,
//! kept only in the sealed flow), the client library signs an assertion with it, the assertion is
//! traded at the token endpoint, and the access token is presented to the caller check.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tessera_client::service_account::{AssertionSigner, JWT_BEARER, private_key_der};
use tessera_domain::audit::Actor;
use tessera_domain::oauth2::clients::{self, ClientKind, NewClient};

use super::oauth2::{absorb_tokens, chosen_project, jwt_part, scope_of};
use super::{Decoded, Flow, Outcome, StepInput, client, internal, public, random, send};
use crate::error::PageError;

/// The name of the service account the playground registers in a developer's project.
const SERVICE_ACCOUNT: &str = "Playground service account";
/// The most keys a service account holds (`clients::add_key` refuses more).
const MAX_KEYS: usize = 10;

/// The playground's service account in the chosen project, its key id and private key (DER): the
/// flow's, else a new key pair for the project's playground service account (created first when
/// there is none).
async fn service_account(
    input: &StepInput<'_>,
    flow: &mut Flow,
    outcome: &mut Outcome,
) -> Result<Option<(String, String, Vec<u8>)>, PageError> {
    let ctx = &input.state.ctx;
    let Some(project) = chosen_project(input, outcome).await? else { return Ok(None) };
    if let Some((id, kid, der)) = &flow.service_account
        && let Some(found) = clients::load(ctx, id).await?
        && found.record.project_id == project.id
        && found.settings.keys.iter().any(|it| &it.kid == kid)
        && let Ok(der) = STANDARD.decode(der)
    {
        return Ok(Some((id.clone(), kid.clone(), der)));
    }
    let existing = clients::list(ctx, &project.id)
        .await?
        .into_iter()
        .find(|it| it.kind == ClientKind::ServiceAccount && it.record.name == SERVICE_ACCOUNT);
    let account = match existing {
        Some(found) => found,
        None => {
            let new = NewClient {
                kind: ClientKind::ServiceAccount,
                name: SERVICE_ACCOUNT.to_owned(),
                redirect_uris: Vec::new(),
                android_package: None,
                android_cert_sha1: None,
                allow_implicit: false,
                jwt_access_tokens: false,
            };
            let created = clients::create(ctx, &project, new, &Actor::Account).await?;
            outcome.notes.push(format!(
                "Created the service account \"{SERVICE_ACCOUNT}\" ({}) in project {}.",
                created.client.id(),
                project.name
            ));
            created.client
        }
    };
    if account.settings.keys.len() >= MAX_KEYS
        && let Some(oldest) = account.settings.keys.iter().min_by_key(|it| it.created_at)
    {
        clients::remove_key(ctx, account.id(), &oldest.kid, &Actor::Account).await?;
        outcome.notes.push(format!(
            "The service account had {MAX_KEYS} keys, the most it may hold: its oldest key {} was \
             removed (as \"Remove key\" in the console).",
            oldest.kid
        ));
    }
    let (kid, pem) = clients::add_key(ctx, account.id(), &Actor::Account).await?;
    let der =
        private_key_der(&pem).map_err(|err| internal(format!("service account key: {err}")))?;
    outcome.notes.push(format!(
        "Created the key pair {kid} for the service account {}, as \"Create key\" in the console: \
         the server registered the public key; the private key is handed out once, and the \
         playground keeps it only in this flow's sealed cookie.",
        account.id()
    ));
    flow.service_account = Some((account.id().to_owned(), kid.clone(), STANDARD.encode(&der)));
    Ok(Some((account.id().to_owned(), kid, der)))
}

/// Signs an assertion for the chosen scopes with the service account's key and trades it at the
/// token endpoint (no client authentication: the assertion is the service account's).
pub(super) async fn jwt_bearer(
    input: &StepInput<'_>,
    flow: &mut Flow,
) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let Some(scope) = scope_of(input) else {
        outcome.error = Some("Name at least one scope of a service.".to_owned());
        return Ok(outcome);
    };
    let Some((client_id, kid, der)) = service_account(input, flow, &mut outcome).await? else {
        return Ok(outcome);
    };
    let signer = AssertionSigner::from_pkcs8_der(&client_id, Some(&kid), &der)
        .map_err(|err| internal(format!("service account key: {err}")))?;
    let token_url = public(input.state, "/o/oauth2/token");
    let now = input.state.ctx.now().max(0) as u64;
    let assertion = signer
        .assertion(&token_url, &scope, now, &random(input.state, 16))
        .map_err(|err| internal(format!("assertion: {err}")))?;
    outcome.decoded.push(Decoded {
        what: "Assertion",
        header: jwt_part(&assertion, 0),
        claims: jwt_part(&assertion, 1),
        verified: true,
        verdict: format!(
            "Signed by the client library with the service account's private key {kid} (RS256); \
             the token endpoint checks it against the public key registered under that id, and \
             accepts it once."
        ),
    });
    flow.access_token = None;
    flow.refresh_token = None;
    flow.public_client = None;
    let request =
        client().post(token_url).form(&[("grant_type", JWT_BEARER), ("assertion", &assertion)]);
    let exchange = send("Token request (JWT bearer)", request, &[]).await?;
    let (status, body) = (exchange.status, exchange.body.clone());
    outcome.exchanges.push(exchange);
    absorb_tokens(input.state, flow, &mut outcome, status, &body).await;
    // The service account's own token names no person: userinfo has nothing to say about it.
    outcome.next.retain(|it| it.step != "userinfo");
    Ok(outcome)
}
