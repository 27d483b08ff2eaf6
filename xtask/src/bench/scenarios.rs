//! The scenario table. Adding a scenario is one entry here: what tessera is sent (its probe is
//! every route of its plan: a 404 or 405 from any skips the scenario), what the peer is sent for
//! the same work, and which ceiling bounds it.
//!
//! Fixture variables (see `load` for templates): `client_id`, `client_secret`, `redirect_uri`,
//! `resource`, `code_verifier`, `code_challenge`, `email`, `password`, `cookie_name`,
//! `session_cookie` (a list: it cycles). Everything else a plan uses it captures itself.

use super::load::{Capture, Plan, Req};
use super::oauth1::Sign;

pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) title: &'static str,
    pub(crate) tessera: Plan,
    /// The same work on the peer, if it has an equivalent.
    pub(crate) peer: Option<Plan>,
    /// Also run against the 2-process peer cluster (stateless endpoints only: each peer process
    /// has its own in-memory store).
    pub(crate) peer_cluster: bool,
    /// One of [`ceilings`], by name: run in turns with tessera, with the same connections.
    pub(crate) ceiling: Option<&'static str>,
    /// Few connections (2 per core): password hashing saturates the CPU with a few.
    pub(crate) password_bound: bool,
    /// At most this many connections (e.g. a server limit on live tokens per account and client).
    pub(crate) max_connections: Option<usize>,
    pub(crate) note: &'static str,
}

impl Scenario {
    fn new(name: &'static str, title: &'static str, tessera: Plan) -> Self {
        Scenario {
            name,
            title,
            tessera,
            peer: None,
            peer_cluster: false,
            ceiling: None,
            password_bound: false,
            max_connections: None,
            note: "",
        }
    }

    fn peer(mut self, plan: Plan) -> Self {
        self.peer = Some(plan);
        self
    }

    fn cluster(mut self) -> Self {
        self.peer_cluster = true;
        self
    }

    fn ceiling(mut self, c: &'static str) -> Self {
        self.ceiling = Some(c);
        self
    }

    fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = Some(n);
        self
    }

    fn password_bound(mut self) -> Self {
        self.password_bound = true;
        self
    }

    fn note(mut self, note: &'static str) -> Self {
        self.note = note;
        self
    }
}

// --- tessera's requests (Google-style routes) ---

const T_TOKEN: &str = "/o/oauth2/token";

/// Authorization request with the seeded session cookie: expects a redirect carrying `code`.
fn t_authorize() -> Req {
    Req::get(
        "/o/oauth2/v2/auth?response_type=code&client_id={client_id}&redirect_uri={redirect_uri}\
         &scope=openid%20email&access_type=offline&state=bench&code_challenge={code_challenge}\
         &code_challenge_method=S256",
    )
    .header("cookie", "{cookie_name}={session_cookie}")
    .expect(&[302, 303])
    .capture(Capture::Location { param: "code", var: "code" })
}

fn t_exchange() -> Req {
    Req::post(
        T_TOKEN,
        "grant_type=authorization_code&code={code}&code_verifier={code_verifier}&redirect_uri={redirect_uri}\
         &client_id={client_id}&client_secret={client_secret}",
    )
}

/// Setup for the user-token scenarios of the client whose access tokens are ES256 JWTs.
fn t_user_jwt_tokens(plan: Plan) -> Plan {
    plan.setup(
        Req::get(
            "/o/oauth2/v2/auth?response_type=code&client_id={jwt_client_id}&redirect_uri={redirect_uri}\
             &scope=openid%20email&state=bench&code_challenge={code_challenge}&code_challenge_method=S256",
        )
        .header("cookie", "{cookie_name}={session_cookie}")
        .expect(&[302, 303])
        .capture(Capture::Location { param: "code", var: "code" }),
    )
    .setup(
        Req::post(
            T_TOKEN,
            "grant_type=authorization_code&code={code}&code_verifier={code_verifier}&redirect_uri={redirect_uri}\
             &client_id={jwt_client_id}&client_secret={jwt_client_secret}",
        )
        .capture(Capture::Json { field: "access_token", var: "access_token" }),
    )
}

/// Setup for the user-token scenarios: a code, then its exchange for tokens.
fn t_user_tokens(plan: Plan) -> Plan {
    plan.setup(t_authorize()).setup(
        t_exchange()
            .capture(Capture::Json { field: "access_token", var: "access_token" })
            .capture(Capture::Json { field: "refresh_token", var: "refresh_token" }),
    )
}

// --- the peer's requests (node oidc-provider; see bench/peer/server.mjs) ---

const P_TOKEN: &str = "/token";

fn p_access_token(plan: Plan) -> Plan {
    plan.setup(
        Req::get("/bench/access-token")
            .capture(Capture::Json { field: "access_token", var: "access_token" }),
    )
}

// --- requests shared by both (the token endpoint's form bodies) ---

const CLIENT_CREDENTIALS: &str = "grant_type=client_credentials&client_id={client_id}&client_secret={client_secret}&resource={resource}";
/// tessera's client whose access tokens are RFC 9068 JWTs (ES256), like the peer's.
const CLIENT_CREDENTIALS_JWT: &str = "grant_type=client_credentials&client_id={jwt_client_id}&client_secret={jwt_client_secret}&resource={resource}";
const INTROSPECT_JWT: &str =
    "token={access_token}&client_id={jwt_client_id}&client_secret={jwt_client_secret}";
const REFRESH: &str = "grant_type=refresh_token&refresh_token={refresh_token}&client_id={client_id}&client_secret={client_secret}";
const INTROSPECT: &str = "token={access_token}&client_id={client_id}&client_secret={client_secret}";

/// What a resource server that received an OAuth 1.0a signed `GET {oauth1_resource}` asks the one
/// caller check (tessera-client's tower layer sends the same).
const OAUTH1_CALLER: &str =
    r#"{"authorization":"{oauth1_authorization}","method":"GET","url":"{oauth1_resource}"}"#;

fn oauth1_caller(sign: Sign) -> Plan {
    Plan::main(Req::post_json("/accounts/caller", OAUTH1_CALLER).signed(sign))
}

fn refresh(path: &'static str) -> Req {
    // Rotation: every answer carries the next refresh token of this connection's chain.
    Req::post(path, REFRESH)
        .capture(Capture::JsonIfPresent { field: "refresh_token", var: "refresh_token" })
        .capture(Capture::Json { field: "id_token", var: "id_token" })
}

/// The HTTP ceilings (bench/ceiling): same load, nothing but HTTP, parsing and crypto.
pub(crate) fn ceilings() -> Vec<(&'static str, &'static str, Plan)> {
    vec![
        ("ceiling_hello", "ceiling: hello JSON GET", Plan::main(Req::get("/hello"))),
        (
            "ceiling_form",
            "ceiling: urlencoded form POST",
            Plan::main(Req::post(
                "/form",
                "csrf=0123456789abcdef0123456789abcdef&email={email}&password={password}",
            )),
        ),
        (
            "ceiling_token",
            "ceiling: ES256 token mint, no store",
            Plan::main(Req::post("/token", CLIENT_CREDENTIALS)),
        ),
        (
            "ceiling_argon2",
            "ceiling: one Argon2id hash (m=19456 KiB, t=2, p=1) per request, one per core at a time",
            Plan::main(Req::post("/argon2", "password={password}")),
        ),
    ]
}

pub(crate) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("discovery", "GET /.well-known/openid-configuration", Plan::main(Req::get("/.well-known/openid-configuration")))
            .peer(Plan::main(Req::get("/.well-known/openid-configuration")))
            .cluster()
            .ceiling("ceiling_hello"),
        Scenario::new("jwks", "GET /oauth2/v3/certs (JWKS)", Plan::main(Req::get("/oauth2/v3/certs")))
            .peer(Plan::main(Req::get("/jwks")))
            .cluster()
            .ceiling("ceiling_hello"),
        Scenario::new("client_credentials", "POST /o/oauth2/token client_credentials (ES256 JWT)", Plan::main(Req::post(T_TOKEN, CLIENT_CREDENTIALS_JWT)))
            .peer(Plan::main(Req::post(P_TOKEN, CLIENT_CREDENTIALS)))
            .cluster()
            .ceiling("ceiling_token")
            .note("both issue ES256 RFC 9068 access tokens (the peer through a resource indicator); tessera also stores each one so that it can be revoked at once"),
        Scenario::new("client_credentials_opaque", "POST /o/oauth2/token client_credentials (opaque token)", Plan::main(Req::post(T_TOKEN, CLIENT_CREDENTIALS)))
            .ceiling("ceiling_token")
            .note("tessera's default: a 256-bit random token, stored"),
        Scenario::new("refresh", "POST /o/oauth2/token refresh_token (rotation + RS256 ID token)", t_user_tokens(Plan::main(refresh(T_TOKEN))))
            .peer(Plan::main(refresh(P_TOKEN)).setup(
                Req::get("/bench/refresh-token").capture(Capture::Json { field: "refresh_token", var: "refresh_token" }),
            ))
            .max_connections(10)
            .note("each connection keeps its own refresh-token chain; 10 connections, because an account holds at most 10 live refresh tokens per client (the oldest is retired), for both systems"),
        Scenario::new(
            "code_exchange",
            "POST /o/oauth2/token authorization_code + PKCE",
            Plan::main(t_exchange().capture(Capture::Json { field: "id_token", var: "id_token" })).pre(t_authorize()),
        )
        .peer(
            Plan::main(Req::post(
                P_TOKEN,
                "grant_type=authorization_code&code={code}&code_verifier={code_verifier}&redirect_uri={redirect_uri}\
                 &client_id={client_id}&client_secret={client_secret}",
            ))
            .pre(Req::get("/bench/code?challenge={code_challenge}").capture(Capture::Json { field: "code", var: "code" })),
        )
        .note("per iteration: an unmeasured request for a fresh code, then the measured exchange"),
        Scenario::new("tokeninfo", "GET /oauth2/v3/tokeninfo", t_user_tokens(Plan::main(Req::get("/oauth2/v3/tokeninfo?access_token={access_token}"))))
            .peer(p_access_token(Plan::main(Req::post("/token/introspection", INTROSPECT))))
            .note("peer: introspection (it has no tokeninfo)"),
        Scenario::new("introspection", "POST /oauth2/introspect (opaque token)", t_user_tokens(Plan::main(Req::post("/oauth2/introspect", INTROSPECT))))
            .peer(p_access_token(Plan::main(Req::post("/token/introspection", INTROSPECT))))
            .ceiling("ceiling_form"),
        Scenario::new(
            "tokeninfo_jwt",
            "GET /oauth2/v3/tokeninfo (ES256 JWT access token)",
            Plan::main(Req::get("/oauth2/v3/tokeninfo?access_token={access_token}"))
                .setup(Req::post(T_TOKEN, CLIENT_CREDENTIALS_JWT).capture(Capture::Json { field: "access_token", var: "access_token" })),
        )
        .note("a client's own token: signature, then the one-statement lookup"),
        Scenario::new(
            "introspection_jwt",
            "POST /oauth2/introspect (ES256 JWT access token)",
            Plan::main(Req::post("/oauth2/introspect", INTROSPECT_JWT))
                .setup(Req::post(T_TOKEN, CLIENT_CREDENTIALS_JWT).capture(Capture::Json { field: "access_token", var: "access_token" })),
        )
        .ceiling("ceiling_form")
        .note("signature, then the same one-statement lookup as an opaque token (revocation, grant, client)"),
        Scenario::new(
            "userinfo",
            "GET /oauth2/v3/userinfo",
            t_user_tokens(Plan::main(Req::get("/oauth2/v3/userinfo").header("authorization", "Bearer {access_token}"))),
        )
        .peer(p_access_token(Plan::main(Req::get("/me").header("authorization", "Bearer {access_token}")))),
        Scenario::new(
            "userinfo_jwt",
            "GET /oauth2/v3/userinfo (ES256 JWT access token)",
            t_user_jwt_tokens(Plan::main(Req::get("/oauth2/v3/userinfo").header("authorization", "Bearer {access_token}"))),
        )
        .note("a person's JWT access token from the code flow: signature, then the one-statement lookup"),
        Scenario::new(
            "session",
            "GET /accounts/ListAccounts (session-cookie validation)",
            Plan::main(Req::get("/accounts/ListAccounts").header("cookie", "{cookie_name}={session_cookie}")),
        )
        .ceiling("ceiling_hello")
        .note("cycles through the seeded session cookies"),
        Scenario::new(
            "signin",
            "POST /accounts/ServiceLogin (password sign-in)",
            Plan::main(
                Req::post("/accounts/ServiceLogin", "csrf={csrf}&email={email}&password={password}")
                    .header("cookie", "TCSRF={tcsrf}")
                    .expect(&[303])
                    .capture(Capture::Cookie { name: "TSID", var: "new_session" }),
            )
            .pre(
                Req::get("/accounts/ServiceLogin")
                    .capture(Capture::Hidden { name: "csrf", var: "csrf" })
                    .capture(Capture::Cookie { name: "TCSRF", var: "tcsrf" }),
            ),
        )
        .ceiling("ceiling_argon2")
        .password_bound()
        .note("per iteration: GET the form (fresh CSRF token), then the measured POST; req/s counts pairs"),
        Scenario::new(
            "clientlogin",
            "POST /accounts/ClientLogin",
            Plan::main(Req::post(
                "/accounts/ClientLogin",
                "accountType=HOSTED_OR_GOOGLE&Email={email}&Passwd={password}&service=cl&source=tessera-bench",
            )),
        )
        .ceiling("ceiling_argon2")
        .password_bound(),
        Scenario::new(
            "authsub_tokeninfo",
            "GET /accounts/AuthSubTokenInfo",
            Plan::main(Req::get("/accounts/AuthSubTokenInfo").header("authorization", "AuthSub token=\"{authsub_token}\""))
                .setup(
                    Req::get(
                        "/accounts/AuthSubRequest?next=http%3A%2F%2F127.0.0.1%2Fbench%2Fauthsub\
                         &scope=https%3A%2F%2Fcalendar.example.test%2Ffeeds%2F&session=1&secure=0",
                    )
                    .header("cookie", "{cookie_name}={session_cookie}")
                    .expect(&[200])
                    .capture(Capture::Hidden { name: "csrf", var: "authsub_csrf" })
                    .capture(Capture::Hidden { name: "query", var: "authsub_query" })
                    .capture(Capture::Cookie { name: "TCSRF", var: "tcsrf" }),
                )
                .setup(
                    Req::post("/accounts/AuthSubRequest", "csrf={authsub_csrf}&authuser=0&query={authsub_query}&action=allow")
                        .header("cookie", "{cookie_name}={session_cookie}; TCSRF={tcsrf}")
                        .expect(&[302, 303])
                        .capture(Capture::Location { param: "token", var: "authsub_token" }),
                ),
        )
        .ceiling("ceiling_hello"),
        Scenario::new(
            "oauth1_caller",
            "POST /accounts/caller (OAuth 1.0a HMAC-SHA1 signed resource call)",
            oauth1_caller(Sign::OAuth1Hmac),
        )
        .ceiling("ceiling_hello")
        .note("the load generator signs every call with a fresh nonce; the server checks the signature and timestamp, writes the nonce once (the replay check), then looks the token up"),
        Scenario::new(
            "oauth1_rsa_caller",
            "POST /accounts/caller (OAuth 1.0a RSA-SHA1 signed resource call, 1024-bit key)",
            oauth1_caller(Sign::OAuth1Rsa),
        )
        .note("as oauth1_caller, with an RSA-SHA1 signature by the consumer's registered certificate; compare the server's CPU per request with the raw rsa1024_sha1_verify cost (the load generator's RSA signing shares the cores)"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_fixtures_known() {
        let known = [
            "client_id",
            "client_secret",
            "jwt_client_id",
            "jwt_client_secret",
            "redirect_uri",
            "resource",
            "code_verifier",
            "code_challenge",
            "email",
            "password",
            "cookie_name",
            "session_cookie",
            "oauth1_consumer_key",
            "oauth1_consumer_secret",
            "oauth1_token",
            "oauth1_token_secret",
            "oauth1_resource",
            "oauth1_rsa_consumer_key",
            "oauth1_rsa_token",
            "oauth1_rsa_key",
        ];
        let mut names = std::collections::BTreeSet::new();
        let ceiling_names: Vec<&str> = ceilings().iter().map(|c| c.0).collect();
        for s in scenarios() {
            assert!(names.insert(s.name), "duplicate {}", s.name);
            for plan in std::iter::once(&s.tessera).chain(s.peer.as_ref()) {
                for f in plan.needed_fixtures() {
                    assert!(known.contains(&f.as_str()), "{}: unknown fixture {f}", s.name);
                }
            }
            if let Some(c) = s.ceiling {
                assert!(ceiling_names.contains(&c), "{}: no ceiling {c}", s.name);
            }
            assert!(!s.peer_cluster || s.peer.is_some());
        }
    }
}
