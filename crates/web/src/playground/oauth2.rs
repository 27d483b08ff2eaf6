//! The OAuth 2.0 and OpenID Connect walk: authorization code with PKCE (authorization URL → the
//! consent page → `/playground/callback` → code exchange → ID token decoded and verified against
//! the JWKS → userinfo and the caller check), refresh, and client credentials.

use std::sync::Arc;

use axum::extract::{OriginalUri, State};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use tessera_client::id_token::IdTokenVerifier;
use tessera_client::oauth2::PkceVerifier;
use tessera_domain::audit::Actor;
use tessera_domain::oauth2::clients::{self, ClientKind, NewClient};

use super::{
    Decoded, Field, Flow, Outcome, Returned, ServerClock, Step, StepInput, Walk, caller_check,
    client, public, random, send, show,
};
use crate::AppState;
use crate::error::PageError;

/// The name of the client the playground registers in a developer's project.
const PLAYGROUND_CLIENT: &str = "Playground";

pub(super) async fn step(
    input: &StepInput<'_>,
    flow: &mut Flow,
    step: &str,
) -> Result<Outcome, PageError> {
    match step {
        "start" => start(input, flow).await,
        "exchange" => exchange(input, flow).await,
        "userinfo" => userinfo(input, flow).await,
        "caller" => caller(input, flow).await,
        "refresh" => refresh(input, flow).await,
        "client_credentials" => client_credentials(input, flow).await,
        "jwt_bearer" => super::service_account::jwt_bearer(input, flow).await,
        "token_exchange" => token_exchange(input, flow).await,
        "migrate" => migrate(input, flow).await,
        "device_start" => super::device_flow::start(input, flow).await,
        "device_poll" => super::device_flow::poll(input, flow).await,
        _ => Err(PageError::not_found()),
    }
}

/// The playground's web client in the chosen project and its secret: the one this flow already
/// holds, else the project's playground client with a new secret (the console's "Reset client
/// secret"), else a new client (the console's "Create client").
async fn playground_client(
    input: &StepInput<'_>,
    flow: &mut Flow,
    outcome: &mut Outcome,
) -> Result<Option<(String, String)>, PageError> {
    let ctx = &input.state.ctx;
    let Some(project) = chosen_project(input, outcome).await? else { return Ok(None) };
    let callback = public(input.state, "/playground/callback");
    if flow.project.as_deref() == Some(project.id.as_str())
        && let (Some(id), Some(secret)) = (&flow.client_id, &flow.client_secret)
        && clients::load(ctx, id).await?.is_some_and(|it| it.record.project_id == project.id)
    {
        return Ok(Some((id.clone(), secret.clone())));
    }
    let existing = clients::list(ctx, &project.id).await?.into_iter().find(|it| {
        it.kind == ClientKind::Web
            && it.record.name == PLAYGROUND_CLIENT
            && it.settings.redirect_uris.contains(&callback)
    });
    let (id, secret) = match existing {
        Some(found) => {
            let secret = clients::rotate_secret(ctx, found.id(), &Actor::Account).await?;
            outcome.notes.push(format!(
                "The playground client {} of project {} has a new secret (the old one stopped \
                 working).",
                found.id(),
                project.name
            ));
            (found.id().to_owned(), secret)
        }
        None => {
            let new = NewClient {
                kind: ClientKind::Web,
                name: PLAYGROUND_CLIENT.to_owned(),
                redirect_uris: vec![callback],
                android_package: None,
                android_cert_sha1: None,
                allow_implicit: false,
                jwt_access_tokens: false,
            };
            let created = clients::create(ctx, &project, new, &Actor::Account).await?;
            let secret = created.secret.ok_or_else(|| {
                PageError::from(tessera_domain::Error::Internal("web client without secret".into()))
            })?;
            outcome.notes.push(format!(
                "Created the web client \"{PLAYGROUND_CLIENT}\" ({}) in project {}, redirect URI {}.",
                created.client.id(),
                project.name,
                public(input.state, "/playground/callback"),
            ));
            (created.client.id().to_owned(), secret)
        }
    };
    flow.project = Some(project.id);
    flow.client_id = Some(id.clone());
    flow.client_secret = Some(secret.clone());
    Ok(Some((id, secret)))
}

/// The developer's project the form names, or `None` with the error shown.
pub(super) async fn chosen_project(
    input: &StepInput<'_>,
    outcome: &mut Outcome,
) -> Result<Option<tessera_store::ProjectRecord>, PageError> {
    let ctx = &input.state.ctx;
    let project_id = input.fields.text("project");
    match tessera_domain::projects::get_owned(ctx, &input.me.account.id, &project_id).await {
        Ok(it) => Ok(Some(it)),
        Err(tessera_domain::Error::NotFound | tessera_domain::Error::Forbidden) => {
            outcome.error = Some("Choose one of your projects.".to_owned());
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}

pub(super) fn scope_of(input: &StepInput<'_>) -> Option<String> {
    let scope = input.fields.text("scope").split_whitespace().collect::<Vec<_>>().join(" ");
    (!scope.is_empty() && scope.len() <= 2000).then_some(scope)
}

async fn start(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let Some(scope) = scope_of(input) else {
        outcome.error = Some("Name at least one scope.".to_owned());
        return Ok(outcome);
    };
    let Some((client_id, _)) = playground_client(input, flow, &mut outcome).await? else {
        return Ok(outcome);
    };
    let verifier = PkceVerifier::from_string(random(input.state, 32));
    let state_value = random(input.state, 16);
    let nonce = random(input.state, 16);
    let mut url = url::Url::parse(&public(input.state, "/o/oauth2/auth"))
        .map_err(|err| super::internal(format!("public URL: {err}")))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &public(input.state, "/playground/callback"))
        .append_pair("scope", &scope)
        .append_pair("state", &state_value)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &verifier.challenge())
        .append_pair("code_challenge_method", "S256")
        .append_pair("access_type", "offline");
    flow.pkce_verifier = Some(verifier.secret().to_owned());
    flow.state = Some(state_value);
    flow.nonce = Some(nonce);
    flow.code = None;
    flow.access_token = None;
    flow.refresh_token = None;
    flow.public_client = None;
    outcome.notes.push(format!(
        "Step 1: the authorization request, with a PKCE challenge (S256) whose verifier the \
         playground keeps for the exchange. Open it: you will see the consent page every client \
         gets, and come back to {} with a code.",
        public(input.state, "/playground/callback")
    ));
    outcome.visit = Some((url.to_string(), "Open the authorization URL"));
    Ok(outcome)
}

/// `GET /playground/callback`: the authorization endpoint's answer.
pub(super) async fn callback_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let Returned { query, me, mut flow, mut outcome } =
        match super::returned(&state, &headers, &uri, "/playground/oauth2").await? {
            Ok(returned) => returned,
            Err(res) => return Ok(res),
        };
    let expected = flow.state.clone().filter(|it| Some(it.as_str()) == query.get("state"));
    if expected.is_none() {
        outcome.error =
            Some("This answer's state is not the one the playground sent; start again.".to_owned());
    } else if let Some(error) = query.get("error") {
        outcome.error = Some(format!("The authorization endpoint answered error={error}."));
    } else if let Some(code) = query.get("code") {
        flow.code = Some(code.to_owned());
        flow.state = None;
        outcome.notes.push(
            "Step 2: the state matches. Exchange the code at the token endpoint, with the client \
             secret and the PKCE verifier."
                .to_owned(),
        );
        outcome.next.push(Step::button("exchange", "Exchange the code for tokens"));
    } else {
        outcome.error = Some("The answer carries neither a code nor an error.".to_owned());
    }
    show(&state, &headers, &me, Some(Walk::OAuth2), Some(&flow), outcome).await
}

/// A token request: the playground's web client authenticates with `client_secret_basic`; the
/// device client, a public client, names itself with `client_id` in the form.
pub(super) fn token_request(
    state: &AppState,
    flow: &Flow,
    form: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let request = client().post(public(state, "/o/oauth2/token"));
    match &flow.public_client {
        Some(id) => {
            let mut form: Vec<(&str, &str)> = form.to_vec();
            form.push(("client_id", id.as_str()));
            request.form(&form)
        }
        None => request
            .basic_auth(
                flow.client_id.clone().unwrap_or_default(),
                Some(flow.client_secret.clone().unwrap_or_default()),
            )
            .form(form),
    }
}

/// Reads a token response into the flow and the outcome: tokens kept, the ID token taken apart
/// and verified, the next steps offered.
pub(super) async fn absorb_tokens(
    state: &AppState,
    flow: &mut Flow,
    outcome: &mut Outcome,
    status: u16,
    body: &str,
) {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    if status != 200 {
        outcome.error = Some(format!(
            "The token endpoint refused: {}",
            json.get("error").and_then(|it| it.as_str()).unwrap_or("no error code")
        ));
        return;
    }
    let text = |name: &str| json.get(name).and_then(|it| it.as_str()).map(str::to_owned);
    if let Some(token) = text("access_token") {
        flow.access_token = Some(token);
    }
    if let Some(token) = text("refresh_token") {
        flow.refresh_token = Some(token);
    }
    if let Some(id_token) = text("id_token") {
        let audience =
            flow.public_client.clone().or_else(|| flow.client_id.clone()).unwrap_or_default();
        // The device flow sends no nonce: its tokens are checked without.
        let nonce = match &flow.public_client {
            None => Some(flow.nonce.clone().unwrap_or_default()),
            Some(_) => None,
        };
        outcome.decoded.push(decode_id_token(state, &id_token, &audience, nonce.as_deref()).await);
    }
    if flow.access_token.is_some() {
        outcome.notes.push(
            "Step 3: use the access token, as a client would (userinfo) and as a resource server \
             would see it (the caller check)."
                .to_owned(),
        );
        outcome.next.push(Step::button("userinfo", "Call userinfo"));
        outcome.next.push(Step::button("caller", "Ask the caller check"));
    }
    if flow.refresh_token.is_some() {
        outcome.next.push(Step::button("refresh", "Refresh the access token"));
    }
    if text("id_token").is_some() && flow.public_client.is_none() && flow.client_id.is_some() {
        outcome.next.push(exchange_step(state, flow).await);
    }
}

/// A JWT's header (0) or claims (1), pretty-printed.
pub(super) fn jwt_part(token: &str, index: usize) -> String {
    token
        .split('.')
        .nth(index)
        .and_then(|it| URL_SAFE_NO_PAD.decode(it).ok())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|json| serde_json::to_string_pretty(&json).ok())
        .unwrap_or_else(|| "(not JSON)".to_owned())
}

/// The ID token's header and claims, and the client library's verdict on it: signature checked
/// against the keys this server publishes, then `iss`, `aud` (`client_id`), `exp`, and `nonce`
/// when the request sent one.
async fn decode_id_token(
    state: &AppState,
    token: &str,
    client_id: &str,
    nonce: Option<&str>,
) -> Decoded {
    let part = |index: usize| jwt_part(token, index);
    let jwks = public(state, "/oauth2/v3/certs");
    let verdict = match url::Url::parse(&jwks) {
        Ok(jwks_uri) => {
            let verifier =
                IdTokenVerifier::with_jwks_uri(jwks_uri, state.ctx.public_url.as_ref(), client_id)
                    .clock(Arc::new(ServerClock(state.ctx.clock.clone())))
                    .http_client(client().clone())
                    .build();
            let verified = match nonce {
                Some(nonce) => verifier.verify_with_nonce(token, nonce).await,
                None => verifier.verify(token).await,
            };
            let checked = if nonce.is_none() { "and expiry" } else { "expiry and nonce" };
            match verified {
                Ok(claims) => Ok(format!(
                    "Signature valid against the key set at {jwks}; issuer {}, audience {client_id}, \
                     {checked} checked. Subject {}.",
                    claims.iss, claims.sub
                )),
                Err(err) => Err(format!("Not valid: {err}")),
            }
        }
        Err(err) => Err(format!("Not valid: the key set's URL does not parse ({err})")),
    };
    let (verified, verdict) = match verdict {
        Ok(text) => (true, text),
        Err(text) => (false, text),
    };
    Decoded { what: "ID token", header: part(0), claims: part(1), verified, verdict }
}

async fn exchange(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let (Some(code), Some(verifier)) = (flow.code.take(), flow.pkce_verifier.take()) else {
        outcome.error = Some("There is no code to exchange; start again.".to_owned());
        return Ok(outcome);
    };
    let redirect_uri = public(input.state, "/playground/callback");
    // The code is the web client's, whatever the device flow did meanwhile.
    flow.public_client = None;
    let request = token_request(
        input.state,
        flow,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", &verifier),
        ],
    );
    let exchange = send("Token request (authorization code)", request, &[]).await?;
    let (status, body) = (exchange.status, exchange.body.clone());
    outcome.exchanges.push(exchange);
    let jwks = client().get(public(input.state, "/oauth2/v3/certs"));
    outcome.exchanges.push(send("The published keys (JWKS)", jwks, &[]).await?);
    absorb_tokens(input.state, flow, &mut outcome, status, &body).await;
    Ok(outcome)
}

fn need_access_token(flow: &Flow, outcome: &mut Outcome) -> Option<String> {
    let token = flow.access_token.clone();
    if token.is_none() {
        outcome.error = Some("There is no access token yet; start again.".to_owned());
    }
    token
}

fn after_use(flow: &Flow, outcome: &mut Outcome) {
    outcome.next.push(Step::button("userinfo", "Call userinfo"));
    outcome.next.push(Step::button("caller", "Ask the caller check"));
    if flow.refresh_token.is_some() {
        outcome.next.push(Step::button("refresh", "Refresh the access token"));
    }
}

async fn userinfo(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let Some(token) = need_access_token(flow, &mut outcome) else { return Ok(outcome) };
    let request = client().get(public(input.state, "/oauth2/v3/userinfo")).bearer_auth(token);
    outcome.exchanges.push(send("Userinfo", request, &[]).await?);
    after_use(flow, &mut outcome);
    Ok(outcome)
}

async fn caller(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let Some(token) = need_access_token(flow, &mut outcome) else { return Ok(outcome) };
    let authorization = tessera_client::oauth2::bearer_authorization(&token);
    outcome.exchanges.push(caller_check(input.state, &authorization).await?);
    after_use(flow, &mut outcome);
    Ok(outcome)
}

async fn refresh(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let Some(refresh_token) = flow.refresh_token.clone() else {
        outcome.error = Some("There is no refresh token; start again.".to_owned());
        return Ok(outcome);
    };
    let request = token_request(
        input.state,
        flow,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh_token)],
    );
    let exchange = send("Token request (refresh token)", request, &[]).await?;
    let (status, body) = (exchange.status, exchange.body.clone());
    outcome.exchanges.push(exchange);
    absorb_tokens(input.state, flow, &mut outcome, status, &body).await;
    Ok(outcome)
}

async fn client_credentials(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let Some(scope) = scope_of(input) else {
        outcome.error = Some("Name at least one scope of a service.".to_owned());
        return Ok(outcome);
    };
    if playground_client(input, flow, &mut outcome).await?.is_none() {
        return Ok(outcome);
    }
    flow.access_token = None;
    flow.refresh_token = None;
    flow.public_client = None;
    let request = token_request(
        input.state,
        flow,
        &[("grant_type", "client_credentials"), ("scope", &scope)],
    );
    let exchange = send("Token request (client credentials)", request, &[]).await?;
    let (status, body) = (exchange.status, exchange.body.clone());
    outcome.exchanges.push(exchange);
    absorb_tokens(input.state, flow, &mut outcome, status, &body).await;
    if flow.access_token.is_some() {
        // A client's own token names no account: userinfo has nothing to say about it.
        outcome.next.retain(|it| it.step != "userinfo");
    }
    Ok(outcome)
}

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
const MIGRATION_LEGACY: &str = "urn:tessera:params:oauth:grant-type:migration:legacy";
const MIGRATION_OAUTH1: &str = "urn:ietf:params:oauth:grant-type:migration:oauth1";

/// The token exchange form, its audience filled in with another client of the playground
/// client's project when there is one.
async fn exchange_step(state: &AppState, flow: &Flow) -> Step {
    let mut audience = String::new();
    if let Some(project) = &flow.project {
        let others = clients::list(&state.ctx, project).await.unwrap_or_default();
        if let Some(other) = others.iter().find(|it| Some(it.id()) != flow.client_id.as_deref()) {
            audience = other.id().to_owned();
        }
    }
    Step {
        step: "token_exchange",
        label: "Exchange the access token for an ID token of another client",
        fields: vec![Field::text(
            "audience",
            "Audience (a client id of the same project)",
            &audience,
        )],
    }
}

/// Token exchange (RFC 8693, cross-client identity): the web client trades the access token of
/// the code walk for an ID token whose audience is another client of its project.
async fn token_exchange(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let Some(token) = need_access_token(flow, &mut outcome) else { return Ok(outcome) };
    if flow.public_client.is_some() || flow.client_id.is_none() {
        outcome.error = Some(
            "Token exchange uses the web client's tokens from the authorization code flow; run it \
             first."
                .to_owned(),
        );
        return Ok(outcome);
    }
    let audience = input.fields.text("audience").trim().to_owned();
    if audience.is_empty() || audience.len() > 200 {
        outcome.error = Some("Name the client the ID token is for.".to_owned());
        outcome.next.push(exchange_step(input.state, flow).await);
        return Ok(outcome);
    }
    let request = token_request(
        input.state,
        flow,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", &token),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("requested_token_type", ID_TOKEN_TYPE),
            ("audience", &audience),
        ],
    );
    let exchange = send("Token request (token exchange)", request, &[]).await?;
    let json: serde_json::Value = serde_json::from_str(&exchange.body).unwrap_or_default();
    let text = |name: &str| json.get(name).and_then(|it| it.as_str()).map(str::to_owned);
    let status = exchange.status;
    outcome.exchanges.push(exchange);
    match (status, text("id_token")) {
        (200, Some(id_token)) => {
            outcome.notes.push(format!(
                "An ID token for {audience} (its aud), with this client as the authorized party \
                 (azp), without asking you again: both clients are in the same project. The \
                 answer's access_token is the same ID token (token_type N_A); the playground keeps \
                 using its own access token."
            ));
            outcome.decoded.push(decode_id_token(input.state, &id_token, &audience, None).await);
        }
        _ => {
            outcome.error = Some(format!(
                "The token endpoint refused: {} ({}). Only a client of the same project is an \
                 audience this client may ask for.",
                text("error").unwrap_or_else(|| "no error code".to_owned()),
                text("error_description").unwrap_or_default()
            ));
        }
    }
    outcome.next.push(exchange_step(input.state, flow).await);
    after_use(flow, &mut outcome);
    Ok(outcome)
}

/// The legacy token this flow holds that `which` names (`authsub` or `clientlogin`).
fn legacy_token(flow: &Flow, which: &str) -> Option<String> {
    match which {
        "authsub" => flow.authsub_session.clone(),
        "clientlogin" => flow
            .clientlogin_auth
            .as_deref()
            .and_then(|it| {
                // The value is the client library's `Authorization` form; its prefix is too.
                it.strip_prefix(tessera_client::client_login::authorization("").as_str())
            })
            .map(str::to_owned),
        _ => None,
    }
}

/// The migration grant (`docs/legacy.md`, "Moving to OAuth 2.0"): the AuthSub session token or
/// ClientLogin `Auth` of this flow traded, once, for OAuth 2.0 tokens of the playground's web
/// client in the chosen project. The server moves it only to a client of the project its
/// application is registered in; the refusal is shown as it came.
async fn migrate(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let which = input.fields.text("legacy");
    if which == "oauth1" {
        return migrate_oauth1(input, flow).await;
    }
    let Some(token) = legacy_token(flow, &which) else {
        outcome.error = Some(
            "This flow holds no such legacy token; get one on the AuthSub or ClientLogin page."
                .to_owned(),
        );
        return Ok(outcome);
    };
    if playground_client(input, flow, &mut outcome).await?.is_none() {
        return Ok(outcome);
    }
    flow.access_token = None;
    flow.refresh_token = None;
    flow.public_client = None;
    let request = token_request(
        input.state,
        flow,
        &[("grant_type", MIGRATION_LEGACY), ("legacy_token", &token)],
    );
    let exchange = send("Token request (legacy migration)", request, &[]).await?;
    let (status, body) = (exchange.status, exchange.body.clone());
    outcome.exchanges.push(exchange);
    absorb_tokens(input.state, flow, &mut outcome, status, &body).await;
    if status == 200 {
        match which.as_str() {
            "authsub" => flow.authsub_session = None,
            _ => flow.clientlogin_auth = None,
        }
        outcome.notes.insert(
            0,
            "The legacy token bought these OAuth 2.0 tokens, on the same scopes, once: it is used \
             up, and the account page lists the web client as a connected app."
                .to_owned(),
        );
    } else {
        outcome.notes.push(
            "A legacy token moves only to a web client of the project its application is \
             registered in: for ClientLogin, the registered client the login's source named; for \
             AuthSub, the project of the registration for the next URL's domain. The token stays \
             as it was."
                .to_owned(),
        );
        // No next step here: the page offers the walk's forms again, the migration among them.
    }
    Ok(outcome)
}

/// The OAuth 2.0 walk's first forms: the authorization code flow, client credentials and the
/// device flow (and polling for a device code this flow holds).
pub(super) fn start_steps(project: impl Fn() -> Field, flow: Option<&Flow>) -> Vec<Step> {
    let mut steps = vec![
        Step {
            step: "start",
            label: "Build the authorization URL",
            fields: vec![project(), Field::text("scope", "Scopes", "openid email profile")],
        },
        Step {
            step: "client_credentials",
            label: "Get a token with client credentials",
            fields: vec![project(), Field::text("scope", "Scopes (a service's)", "")],
        },
        Step {
            step: "device_start",
            label: "Start the device flow",
            fields: vec![project(), Field::text("scope", "Scopes", "openid email profile")],
        },
        Step {
            step: "jwt_bearer",
            label: "Get a token as a service account (JWT bearer)",
            fields: vec![project(), Field::text("scope", "Scopes (a service's)", "")],
        },
    ];
    let legacy: Vec<(String, String)> =
        [("authsub", "the AuthSub session token"), ("clientlogin", "the ClientLogin Auth token")]
            .into_iter()
            .filter(|(which, _)| flow.is_some_and(|it| legacy_token(it, which).is_some()))
            .chain(
                flow.filter(|it| it.oauth1_access.is_some())
                    .map(|_| ("oauth1", "the OAuth 1.0 access token")),
            )
            .map(|(which, label)| (which.to_owned(), label.to_owned()))
            .collect();
    if !legacy.is_empty() {
        let choice = Field {
            name: "legacy",
            label: "Legacy token (from the AuthSub, ClientLogin or OAuth 1.0a walk)",
            kind: "select",
            value: String::new(),
            options: legacy,
        };
        steps.push(Step {
            step: "migrate",
            label: "Move the legacy token to OAuth 2.0",
            fields: vec![project(), choice],
        });
    }
    if flow.is_some_and(|it| it.device_code.is_some()) {
        steps.insert(0, Step::button("device_poll", super::device_flow::POLL));
    }
    steps
}

/// The OAuth 1.0 migration grant: the token request signed with OAuth 1.0 by the walk's consumer
/// with its access token, the playground's web client authenticating in the body (the
/// `Authorization` header carries the signature). The consumer's registration must be in the
/// chosen project.
async fn migrate_oauth1(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    if flow.oauth1_access.is_none() {
        outcome.error = Some(
            "This flow holds no OAuth 1.0 access token; get one on the OAuth 1.0a page.".into(),
        );
        return Ok(outcome);
    }
    let Some((client_id, client_secret)) = playground_client(input, flow, &mut outcome).await?
    else {
        return Ok(outcome);
    };
    let form = [
        ("grant_type", MIGRATION_OAUTH1),
        ("client_id", client_id.as_str()),
        ("client_secret", client_secret.as_str()),
    ];
    let Some(request) = super::oauth1::migration_request(input.state, flow, &form)? else {
        return Ok(outcome);
    };
    flow.access_token = None;
    flow.refresh_token = None;
    flow.public_client = None;
    let exchange = send("Token request (OAuth 1.0 migration)", request, &["client_secret"]).await?;
    let (status, body) = (exchange.status, exchange.body.clone());
    outcome.exchanges.push(exchange);
    absorb_tokens(input.state, flow, &mut outcome, status, &body).await;
    if status == 200 {
        flow.oauth1_access = None;
        outcome.notes.insert(
            0,
            "The OAuth 1.0 access token bought these OAuth 2.0 tokens, on the same scopes, once: \
             it is revoked."
                .to_owned(),
        );
    } else {
        outcome.notes.push(
            "An OAuth 1.0 access token moves only to a web client of the project its consumer is \
             registered in (the anonymous consumer is in none). The token stays as it was."
                .to_owned(),
        );
    }
    Ok(outcome)
}
