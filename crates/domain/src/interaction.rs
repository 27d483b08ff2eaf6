//! The one interaction flow every browser-facing protocol runs (the OAuth 2.0 authorization
//! endpoint, the device flow's approval page, `AuthSubRequest`, OpenID 2.0's `checkid_*`; OAuth 1.0a next):
//! which signed-in account answers, whether it must sign in again, whether the person sees the
//! consent page, and what their answer records.
//!
//! A protocol turns its request into a [`Request`]: who asks ([`Applicant`]), for which scopes,
//! and what the request asks of the flow ([`Asks`]: `authuser`, `hd`, `login_hint`, the `prompt`
//! values, `max_age`, immediate mode, the page language). [`start`] takes it with the browser's signed-in accounts
//! and answers the next [`Step`]; once the consent page is answered, [`decide`] records the grant
//! or the refusal. The protocol renders the step and issues its own credential for an
//! [`Approved`] one. Sign-in and 2-step stay in the sign-in pages: [`Step::SignIn`] and
//! [`Step::Reauthenticate`] send the browser there, and it comes back to the protocol's endpoint.
//!
//! Consent is remembered in the grants themselves (`domain::grants`): with [`Memory::PerProject`]
//! a request whose scopes were all granted, through the same protocol, to any client of the same
//! project needs no new consent (the project is the unit of trust), unless `prompt=consent`.

use tessera_store::{GrantRecord, ProjectRecord};

use crate::services::ScopeInfo;
use crate::sessions::SignedIn;
use crate::{Ctx, Result, grants};

/// A request of any protocol, as the flow sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The protocol the grant is recorded under.
    pub protocol: crate::credentials::Protocol,
    /// The client the grant names (an OAuth client id, an AuthSub domain or host).
    pub client_id: String,
    pub applicant: Applicant,
    /// The scopes asked for, resolved to words.
    pub scopes: Vec<ScopeInfo>,
    pub asks: Asks,
    pub choosing: Choosing,
    pub memory: Memory,
}

/// Who asks, as the consent page introduces them.
#[derive(Debug, Clone)]
pub enum Applicant {
    /// A registered client of a project: the page names the project's product (its branding), or
    /// else the client, and says whether an administrator verified the project.
    Client { name: String, project: ProjectRecord },
    /// An application known by the site it sends the person back to (AuthSub): a registered
    /// domain, or an unregistered one of which only the host is known.
    Site {
        name: String,
        registered: bool,
        /// The host the person is sent back to.
        return_host: String,
        /// The services the scopes belong to, by their display names.
        services: Vec<String>,
        /// Access lasts until removed (an AuthSub session token), rather than for one request.
        lasting: bool,
        /// The application signs each request with its registered key (secure AuthSub).
        signed: bool,
        /// The realm the person signs in to (OpenID 2.0), shown as the site asking.
        realm: Option<String>,
    },
}

/// What a request asks of the flow. Every protocol fills in what it has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asks {
    /// The index of the signed-in account that answers.
    pub authuser: Option<String>,
    /// Only an account of this hosted domain may answer (`*`: of any hosted domain).
    pub hd: Option<String>,
    /// Prefer the signed-in account with this email or subject.
    pub login_hint: Option<String>,
    /// `prompt=select_account`: ask which account answers.
    pub select_account: bool,
    /// `prompt=login`: the account signs in again first.
    pub login: bool,
    /// The account's sign-in may be at most this many seconds old.
    pub max_age: Option<i64>,
    /// `prompt=consent`: show the consent page even when consent is remembered.
    pub consent: bool,
    /// Answer without showing anything (`prompt=none`, OpenID `checkid_immediate`).
    pub immediate: bool,
    /// The language the person's pages are shown in, as the request names it: `hl` (AuthSub,
    /// OAuth 1.0a) or the space-separated `ui_locales` (OAuth 2.0 / OpenID Connect). The pages
    /// pick the first language they are written in, else English.
    pub ui_lang: Option<String>,
}

/// How the answering account is found among the signed-in ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choosing {
    /// Accounts outside `hd` are passed over, `login_hint` picks among the rest, and without
    /// `authuser` the first that fits answers (OAuth 2.0, the device flow).
    Fitting,
    /// Several signed-in accounts and no `authuser`: the person chooses; the account named (or
    /// the only one) must fit `hd`, else the request is answered with [`Step::WrongAccount`]
    /// (AuthSub).
    Named,
}

/// Whether consent is remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    /// Scopes granted to any client of the applicant's project need no new consent.
    PerProject,
    /// Scopes granted before through the same protocol to the same client (an OpenID 2.0 realm)
    /// need no new consent.
    PerClient,
    /// Every request shows the consent page (a person typing a device's code confirms what the
    /// device gets; AuthSub always asked).
    Never,
}

/// The person's answer on the consent page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

/// What happens next.
#[derive(Debug, Clone)]
pub enum Step {
    /// Nobody who may answer is signed in: sign in. `another`: some accounts are signed in, none
    /// fits, so the sign-in form adds one.
    SignIn { another: bool },
    /// Several accounts could answer: the account chooser picks one (it adds `authuser`).
    ChooseAccount,
    /// This account must sign in again first (`prompt=login`, or a sign-in older than `max_age`).
    Reauthenticate { authuser: usize, email: String },
    /// The account named is not of the hosted domain the request asks for.
    WrongAccount { email: String, hd: String },
    /// The person must allow or deny.
    Consent(Box<ConsentView>),
    /// Allowed, now or earlier: the grant is recorded; the protocol issues its credential.
    Approved(Box<Approved>),
    /// Answered without credential.
    Refused(Refusal),
}

/// Why a request ends without credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Immediate mode, and nobody is signed in.
    LoginRequired,
    /// Immediate mode, and the accounts signed in do not do: another or a choice is needed.
    AccountSelectionRequired,
    /// Immediate mode, and the account must sign in again.
    FreshLoginRequired,
    /// Immediate mode, and the person has not allowed this yet.
    ConsentRequired,
    /// The person denied.
    Denied,
}

/// Everything a consent page shows.
#[derive(Debug, Clone)]
pub struct ConsentView {
    /// The `authuser` index of the account answering.
    pub authuser: usize,
    pub email: String,
    /// The application's name: the project's product name when set, else the client's name.
    pub app: String,
    pub about: About,
    pub scopes: Vec<ScopeInfo>,
}

/// What the consent page says about who asks.
#[derive(Debug, Clone)]
pub enum About {
    /// A client of a project, with the project's consent-screen branding.
    Project {
        name: String,
        verified: bool,
        homepage: Option<String>,
        support: Option<String>,
        /// An https URL.
        logo: Option<String>,
    },
    /// An application known by its site.
    Site {
        registered: bool,
        return_host: String,
        services: Vec<String>,
        lasting: bool,
        signed: bool,
        realm: Option<String>,
    },
}

/// An allowed request.
#[derive(Debug, Clone)]
pub struct Approved {
    pub authuser: usize,
    pub signed: SignedIn,
    pub grant: GrantRecord,
}

/// Which signed-in account answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// This `authuser` index.
    Account(usize),
    /// Nobody suitable is signed in.
    SignIn,
    /// The person chooses.
    Choose,
    /// This account was named, and it does not fit `hd`.
    Unfit(usize),
}

/// Whether the account is one `hd` accepts.
fn fits(signed: &SignedIn, hd: Option<&str>) -> bool {
    match hd {
        None => true,
        Some("*") => signed.account.domain.is_some(),
        Some(hd) => signed.account.domain.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(hd)),
    }
}

/// Finds the account that answers.
pub fn choose(signed_in: &[SignedIn], asks: &Asks, choosing: Choosing) -> Choice {
    let hd = asks.hd.as_deref();
    match choosing {
        Choosing::Fitting => {
            if let Some(authuser) = asks.authuser.as_deref() {
                let named =
                    authuser.parse::<usize>().ok().and_then(|i| signed_in.get(i).map(|it| (i, it)));
                return match named {
                    Some((index, it)) if fits(it, hd) => Choice::Account(index),
                    _ => Choice::SignIn,
                };
            }
            let candidates: Vec<usize> = signed_in
                .iter()
                .enumerate()
                .filter(|(_, it)| fits(it, hd))
                .map(|(i, _)| i)
                .collect();
            let Some(first) = candidates.first() else { return Choice::SignIn };
            if let Some(hint) = asks.login_hint.as_deref() {
                let hinted = candidates.iter().find(|i| {
                    let account = &signed_in[**i].account;
                    account.email.eq_ignore_ascii_case(hint)
                        || crate::accounts::subject(&account.id) == hint
                });
                if let Some(index) = hinted {
                    return Choice::Account(*index);
                }
            }
            if asks.select_account {
                return Choice::Choose;
            }
            Choice::Account(*first)
        }
        Choosing::Named => {
            if asks.authuser.is_none() && signed_in.len() > 1 {
                return Choice::Choose;
            }
            let index = asks.authuser.as_deref().and_then(|it| it.parse().ok()).unwrap_or(0);
            match signed_in.get(index) {
                Some(it) if fits(it, hd) => Choice::Account(index),
                Some(_) => Choice::Unfit(index),
                None if signed_in.is_empty() => Choice::SignIn,
                None => Choice::Choose,
            }
        }
    }
}

/// The step for a choice that is not an account, in immediate mode or not.
fn without_account(
    signed_in: &[SignedIn],
    asks: &Asks,
    choice: Choice,
) -> std::result::Result<usize, Step> {
    let step = match choice {
        Choice::Account(index) => return Ok(index),
        _ if asks.immediate && signed_in.is_empty() => Step::Refused(Refusal::LoginRequired),
        _ if asks.immediate => Step::Refused(Refusal::AccountSelectionRequired),
        Choice::SignIn => Step::SignIn { another: !signed_in.is_empty() },
        Choice::Choose => Step::ChooseAccount,
        Choice::Unfit(index) => Step::WrongAccount {
            email: signed_in[index].account.email.clone(),
            hd: asks.hd.clone().unwrap_or_default(),
        },
    };
    Err(step)
}

/// The next step of a request that was not answered yet.
pub async fn start(ctx: &Ctx, req: &Request, signed_in: &[SignedIn], ip: &str) -> Result<Step> {
    let index =
        match without_account(signed_in, &req.asks, choose(signed_in, &req.asks, req.choosing)) {
            Ok(index) => index,
            Err(step) => return Ok(step),
        };
    let signed = &signed_in[index];
    if needs_fresh_login(ctx, signed, &req.asks) {
        return Ok(match req.asks.immediate {
            true => Step::Refused(Refusal::FreshLoginRequired),
            false => Step::Reauthenticate { authuser: index, email: signed.account.email.clone() },
        });
    }
    let held = match consent(ctx, req, signed).await? {
        Consent::Needed => {
            return Ok(match req.asks.immediate {
                true => Step::Refused(Refusal::ConsentRequired),
                false => Step::Consent(Box::new(consent_view(ctx, req, index, signed).await?)),
            });
        }
        Consent::Given { held } => held,
    };
    match held {
        // The grant just read holds every scope asked: approved as `grants::grant` would have
        // answered, without reading it again. Should it be revoked meanwhile, what is issued
        // under it is refused by the validator, which judges the grant.
        Some(grant) => Ok(Step::Approved(Box::new(Approved {
            authuser: index,
            signed: signed.clone(),
            grant,
        }))),
        None => approve(ctx, req, index, signed, ip).await,
    }
}

/// Records the person's answer to the consent page: Allow records (or widens) the grant, which is
/// also what remembers the consent; Deny records nothing. The answering account is found again,
/// as the page named it; a fresh sign-in or the consent memory are not asked again.
pub async fn decide(
    ctx: &Ctx,
    req: &Request,
    signed_in: &[SignedIn],
    decision: Decision,
    ip: &str,
) -> Result<Step> {
    let choice = match choose(signed_in, &req.asks, req.choosing) {
        // Saying no needs no particular account.
        Choice::Unfit(index) if decision == Decision::Deny => Choice::Account(index),
        choice => choice,
    };
    let index = match without_account(signed_in, &req.asks, choice) {
        Ok(index) => index,
        Err(step) => return Ok(step),
    };
    match decision {
        Decision::Deny => Ok(Step::Refused(Refusal::Denied)),
        Decision::Allow => approve(ctx, req, index, &signed_in[index], ip).await,
    }
}

/// Whether the account must sign in again first: `prompt=login`, or a sign-in older than `max_age`.
fn needs_fresh_login(ctx: &Ctx, signed: &SignedIn, asks: &Asks) -> bool {
    let age = ctx.now() - signed.session.auth_time;
    asks.login || asks.max_age.is_some_and(|max| age > max)
}

/// Whether the person must see the consent page.
enum Consent {
    Needed,
    /// Remembered: no page. `held` is this account's live grant to the client through the
    /// protocol when it was read on the way and holds every scope asked (nothing to record).
    Given {
        held: Option<GrantRecord>,
    },
}

/// Whether the person must see the consent page, and the live grant read on the way.
async fn consent(ctx: &Ctx, req: &Request, signed: &SignedIn) -> Result<Consent> {
    let holds = |grant: &GrantRecord| {
        let granted = crate::credentials::Scopes::parse(&grant.scopes);
        req.scopes.iter().all(|it| granted.contains(&it.scope))
    };
    if req.memory == Memory::PerClient && !req.asks.consent {
        let live = grants::find_live(ctx, &signed.account.id, &req.client_id, req.protocol).await?;
        let held = live.filter(holds);
        // Asking for nothing needs no page, grant or none (`approve` then records one).
        if held.is_none() && !req.scopes.is_empty() {
            return Ok(Consent::Needed);
        }
        return Ok(Consent::Given { held });
    }
    let project = match (&req.memory, &req.applicant) {
        (Memory::PerProject, Applicant::Client { project, .. }) if !req.asks.consent => project,
        _ => return Ok(Consent::Needed),
    };
    let mut granted: Vec<String> = Vec::new();
    let mut own = None;
    // Kept, like the clients below: read once a second, not once per authorization.
    for grant in crate::answers::grants_of(ctx, &signed.account.id).await? {
        if grant.revoked_at.is_some() || grant.protocol != req.protocol.as_str() {
            continue;
        }
        let same_project = if grant.client_id == req.client_id {
            true
        } else {
            // Kept by the rules of token checks (`answers`): read once a second, not once per
            // authorization.
            crate::answers::get_client(ctx, &grant.client_id)
                .await?
                .is_some_and(|it| it.project_id == project.id)
        };
        if same_project {
            granted.extend(crate::credentials::Scopes::parse(&grant.scopes).to_vec());
        }
        if grant.client_id == req.client_id {
            own = Some(grant);
        }
    }
    if !req.scopes.iter().all(|it| granted.contains(&it.scope)) {
        return Ok(Consent::Needed);
    }
    Ok(Consent::Given { held: own.filter(holds) })
}

async fn consent_view(
    ctx: &Ctx,
    req: &Request,
    authuser: usize,
    signed: &SignedIn,
) -> Result<ConsentView> {
    let (app, about) = match &req.applicant {
        Applicant::Client { name, project } => {
            let branding = crate::projects::branding(ctx, &project.id).await?;
            let set = |value: &str| (!value.is_empty()).then(|| value.to_owned());
            let (app, homepage, support, logo) = match branding {
                Some(it) => (
                    set(&it.product_name).unwrap_or_else(|| name.clone()),
                    set(&it.homepage),
                    set(&it.support_email),
                    set(&it.logo_url),
                ),
                None => (name.clone(), None, None, None),
            };
            let about = About::Project {
                name: project.name.clone(),
                verified: project.verified,
                homepage,
                support,
                logo,
            };
            (app, about)
        }
        Applicant::Site { name, registered, return_host, services, lasting, signed, realm } => {
            let about = About::Site {
                registered: *registered,
                return_host: return_host.clone(),
                services: services.clone(),
                lasting: *lasting,
                signed: *signed,
                realm: realm.clone(),
            };
            (name.clone(), about)
        }
    };
    Ok(ConsentView {
        authuser,
        email: signed.account.email.clone(),
        app,
        about,
        scopes: req.scopes.clone(),
    })
}

async fn approve(
    ctx: &Ctx,
    req: &Request,
    authuser: usize,
    signed: &SignedIn,
    ip: &str,
) -> Result<Step> {
    let scopes: Vec<String> = req.scopes.iter().map(|it| it.scope.clone()).collect();
    let grant =
        grants::grant(ctx, &signed.account.id, &req.client_id, req.protocol, &scopes, ip).await?;
    Ok(Step::Approved(Box::new(Approved { authuser, signed: signed.clone(), grant })))
}

#[cfg(test)]
mod tests {
    use tessera_store::{AccountRecord, AccountState, SessionRecord};

    use super::*;

    fn signed(email: &str, domain: Option<&str>) -> SignedIn {
        let account = AccountRecord {
            id: format!("id-{email}"),
            email: email.to_owned(),
            name: email.to_owned(),
            domain: domain.map(str::to_owned),
            password_hash: None,
            state: AccountState::Active,
            is_admin: false,
            totp_secret_enc: None,
            totp_last_step: None,
            created_at: 0,
            updated_at: 0,
        };
        let session = SessionRecord {
            id: format!("s-{email}"),
            account_id: account.id.clone(),
            created_at: 0,
            auth_time: 0,
            last_seen_at: 0,
            expires_at: 10,
            revoked_at: None,
            persistent: false,
            second_factor: false,
            user_agent: String::new(),
            ip: String::new(),
        };
        SignedIn { token: String::new(), session, account }
    }

    fn check(signed_in: &[SignedIn], asks: Asks, choosing: Choosing, expected: Choice) {
        assert_eq!(choose(signed_in, &asks, choosing), expected, "{asks:?} {choosing:?}");
    }

    #[test]
    fn fitting_passes_over_accounts_outside_hd_and_follows_hints() {
        use Choice::*;
        let two =
            [signed("ann@example.test", None), signed("dee@corp.example", Some("corp.example"))];
        let asks = |f: fn(&mut Asks)| {
            let mut asks = Asks::default();
            f(&mut asks);
            asks
        };
        check(&[], Asks::default(), Choosing::Fitting, SignIn);
        check(&two, Asks::default(), Choosing::Fitting, Account(0));
        check(&two, asks(|a| a.hd = Some("corp.example".into())), Choosing::Fitting, Account(1));
        check(&two, asks(|a| a.hd = Some("*".into())), Choosing::Fitting, Account(1));
        check(&two, asks(|a| a.hd = Some("other.example".into())), Choosing::Fitting, SignIn);
        check(
            &two,
            asks(|a| a.login_hint = Some("DEE@corp.example".into())),
            Choosing::Fitting,
            Account(1),
        );
        check(&two, asks(|a| a.select_account = true), Choosing::Fitting, Choose);
        check(&two, asks(|a| a.authuser = Some("1".into())), Choosing::Fitting, Account(1));
        check(&two, asks(|a| a.authuser = Some("2".into())), Choosing::Fitting, SignIn);
        check(
            &two,
            asks(|a| {
                a.authuser = Some("0".into());
                a.hd = Some("corp.example".into());
            }),
            Choosing::Fitting,
            SignIn,
        );
    }

    #[test]
    fn named_asks_among_several_and_refuses_an_account_outside_hd() {
        use Choice::*;
        let one = [signed("ann@example.test", None)];
        let two =
            [signed("ann@example.test", None), signed("dee@corp.example", Some("corp.example"))];
        let named = |authuser: Option<&str>, hd: Option<&str>| Asks {
            authuser: authuser.map(str::to_owned),
            hd: hd.map(str::to_owned),
            ..Asks::default()
        };
        check(&[], named(None, None), Choosing::Named, SignIn);
        check(&one, named(None, None), Choosing::Named, Account(0));
        check(&two, named(None, None), Choosing::Named, Choose);
        check(&two, named(Some("1"), None), Choosing::Named, Account(1));
        check(&two, named(Some("5"), None), Choosing::Named, Choose);
        check(&one, named(None, Some("corp.example")), Choosing::Named, Unfit(0));
        check(&two, named(Some("1"), Some("CORP.example")), Choosing::Named, Account(1));
    }

    #[test]
    fn immediate_mode_never_shows_a_page() {
        let immediate = Asks { immediate: true, ..Asks::default() };
        let refusal =
            |signed_in: &[SignedIn], choice| match without_account(signed_in, &immediate, choice) {
                Err(Step::Refused(refusal)) => refusal,
                other => panic!("{other:?}"),
            };
        assert_eq!(refusal(&[], Choice::SignIn), Refusal::LoginRequired);
        let one = [signed("ann@example.test", None)];
        assert_eq!(refusal(&one, Choice::SignIn), Refusal::AccountSelectionRequired);
        assert_eq!(refusal(&one, Choice::Choose), Refusal::AccountSelectionRequired);
        assert_eq!(refusal(&one, Choice::Unfit(0)), Refusal::AccountSelectionRequired);
        assert!(matches!(without_account(&one, &immediate, Choice::Account(0)), Ok(0)));
    }
}
