//! The OpenID 2.0 walk, as a relying party whose `return_to` is the playground: discovery of the
//! OP endpoint (the OP identifier's XRDS), `checkid_setup` in the browser (stateless: no
//! association, so the provider signs with a private one), the positive assertion back at
//! `/playground/openid2/callback` taken apart, then direct verification with
//! `check_authentication`.

use axum::extract::{OriginalUri, State};
use axum::response::Response;
use http::HeaderMap;

use super::{Flow, Outcome, Returned, Step, StepInput, Walk, client, public, random, send, show};
use crate::AppState;
use crate::error::PageError;

/// OpenID Authentication 2.0's namespace.
const NS_OPENID2: &str = "http://specs.openid.net/auth/2.0";
/// "Let the provider choose the identifier."
const IDENTIFIER_SELECT: &str = "http://specs.openid.net/auth/2.0/identifier_select";
/// Attribute Exchange 1.0.
const NS_AX: &str = "http://openid.net/srv/ax/1.0";
/// The largest assertion the playground keeps between steps.
const ASSERTION_LIMIT: usize = 8 * 1024;

pub(super) async fn step(
    input: &StepInput<'_>,
    flow: &mut Flow,
    step: &str,
) -> Result<Outcome, PageError> {
    match step {
        "start" => start(input, flow).await,
        "verify" => verify(input, flow).await,
        _ => Err(PageError::not_found()),
    }
}

/// The text of the first `<URI>` element of an XRDS document: the OP endpoint.
fn xrds_uri(xrds: &str) -> Option<String> {
    let start = xrds.find("<URI>")? + "<URI>".len();
    let end = start + xrds[start..].find("</URI>")?;
    let uri = xrds[start..end].trim();
    (!uri.is_empty()).then(|| uri.replace("&amp;", "&"))
}

/// Step 1: discovery (the OP identifier's XRDS), then the `checkid_setup` URL for the browser.
async fn start(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    flow.openid2_return_to = None;
    flow.openid2_assertion = None;
    let identifier = public(input.state, "/accounts/o8/id");
    let request = client().get(&identifier).header("accept", "application/xrds+xml");
    let exchange = send("Discovery: the OP identifier's XRDS", request, &[]).await?;
    let endpoint = (exchange.status == 200).then(|| xrds_uri(&exchange.body)).flatten();
    outcome.exchanges.push(exchange);
    let Some(endpoint) = endpoint else {
        outcome.error = Some("Discovery found no OP endpoint.".to_owned());
        return Ok(outcome);
    };
    let Ok(mut url) = url::Url::parse(&endpoint) else {
        outcome.error = Some(format!("The OP endpoint {endpoint} is not a URL."));
        return Ok(outcome);
    };
    // The return_to carries a value of this flow's own, so an answer to another request is known.
    let return_to = format!(
        "{}?flow={}",
        public(input.state, "/playground/openid2/callback"),
        random(input.state, 16)
    );
    let realm = public(input.state, "/playground/");
    url.query_pairs_mut()
        .append_pair("openid.ns", NS_OPENID2)
        .append_pair("openid.mode", "checkid_setup")
        .append_pair("openid.claimed_id", IDENTIFIER_SELECT)
        .append_pair("openid.identity", IDENTIFIER_SELECT)
        .append_pair("openid.return_to", &return_to)
        .append_pair("openid.realm", &realm)
        .append_pair("openid.ns.ax", NS_AX)
        .append_pair("openid.ax.mode", "fetch_request")
        .append_pair("openid.ax.type.email", "http://axschema.org/contact/email")
        .append_pair("openid.ax.required", "email");
    flow.openid2_return_to = Some(return_to);
    outcome.notes.push(format!(
        "Step 2: the OP endpoint is {endpoint}. The checkid_setup request names no association \
         (stateless mode: the provider signs with a private one, which only it can check). Open \
         it: you will see the consent page for the realm {realm}, and come back with an assertion."
    ));
    outcome.visit = Some((url.to_string(), "Open the checkid_setup URL"));
    Ok(outcome)
}

/// `GET /playground/openid2/callback`: the provider's answer, sent through the browser.
pub(super) async fn callback_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, PageError> {
    let walk = super::walk_of(&state, Walk::OpenId2.key())?;
    let Returned { query, me, mut flow, mut outcome } =
        match super::returned(&state, &headers, &uri, "/playground/openid2").await? {
            Ok(returned) => returned,
            Err(res) => return Ok(res),
        };
    let raw = uri.query().unwrap_or_default();
    let fields: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .filter(|(name, _)| name.starts_with("openid."))
        .collect();
    let get = |name: &str| query.get(name).unwrap_or_default();
    let expected = flow.openid2_return_to.clone();
    let this_flow = expected.as_deref().is_some_and(|it| {
        let flow_value = url::Url::parse(it).ok().and_then(|url| {
            url.query_pairs().find(|(k, _)| k == "flow").map(|(_, v)| v.into_owned())
        });
        flow_value.as_deref() == query.get("flow") && get("openid.return_to") == it
    });
    if !this_flow {
        outcome.error = Some(
            "This answer's return_to is not the one the playground sent; start again.".to_owned(),
        );
    } else if get("openid.mode") != "id_res" {
        outcome.error = Some(format!(
            "The provider answered openid.mode={}{}.",
            get("openid.mode"),
            query.get("openid.error").map(|it| format!(" ({it})")).unwrap_or_default()
        ));
        flow.openid2_return_to = None;
    } else if raw.len() > ASSERTION_LIMIT {
        outcome.error = Some("The assertion is too long to keep.".to_owned());
    } else {
        let shown: Vec<String> =
            fields.iter().map(|(name, value)| format!("{name}:{value}")).collect();
        outcome.notes.push(format!(
            "Step 3: a positive assertion (openid.mode=id_res), signed over {}. Its fields:",
            get("openid.signed")
        ));
        outcome.notes.extend(shown);
        outcome.notes.push(
            "An assertion is only as good as its signature: ask the provider directly \
             (check_authentication), as a relying party without an association must."
                .to_owned(),
        );
        flow.openid2_assertion = Some(fields);
        flow.openid2_return_to = None;
        outcome.next.push(Step::button("verify", "Verify with check_authentication"));
    }
    show(&state, &headers, &me, Some(walk), Some(&flow), outcome).await
}

/// Step 4: direct verification. The assertion's fields are posted back to the OP endpoint with
/// `openid.mode=check_authentication`; the Key-Value answer says `is_valid`.
async fn verify(input: &StepInput<'_>, flow: &mut Flow) -> Result<Outcome, PageError> {
    let mut outcome = Outcome::default();
    let Some(fields) = flow.openid2_assertion.clone() else {
        outcome.error = Some("There is no assertion to verify; start again.".to_owned());
        return Ok(outcome);
    };
    let endpoint = fields
        .iter()
        .find(|(name, _)| name == "openid.op_endpoint")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    if endpoint != public(input.state, "/accounts/o8/ud") {
        outcome.error =
            Some(format!("The assertion's op_endpoint {endpoint} is not this server's."));
        return Ok(outcome);
    }
    let form: Vec<(String, String)> = fields
        .into_iter()
        .map(|(name, value)| {
            if name == "openid.mode" {
                (name, "check_authentication".to_owned())
            } else {
                (name, value)
            }
        })
        .collect();
    let request = client().post(&endpoint).form(&form);
    let exchange = send("check_authentication (direct verification)", request, &[]).await?;
    let valid =
        exchange.status == 200 && exchange.body.lines().any(|line| line.trim() == "is_valid:true");
    outcome.exchanges.push(exchange);
    if valid {
        outcome.notes.push(
            "The provider vouches for the assertion (is_valid:true). It says so once: a second \
             check of the same assertion answers is_valid:false, so a replayed assertion is \
             refused."
                .to_owned(),
        );
    } else {
        outcome.error = Some("The provider does not vouch for this assertion.".to_owned());
    }
    outcome.next.push(Step::button("verify", "Verify again"));
    Ok(outcome)
}
