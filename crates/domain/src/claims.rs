//! The one rule for what an account releases to a client: ID tokens, userinfo and tokeninfo all
//! render from [`release`] through [`Released::render_into`], each in its own names, so the three never disagree about who may see
//! an email address, whether it counts as verified, a name or a hosted domain.

use serde_json::{Map, Value, json};
use tessera_store::{AccountRecord, AccountState};

use crate::accounts;
use crate::credentials::{Scopes, account_usable};

/// The facts about an account that a client with these scopes may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// The stable, opaque subject identifier.
    pub sub: String,
    /// With the `email` scope: the address and whether it counts as verified.
    pub email: Option<(String, bool)>,
    /// With the `profile` scope, when the account has a name.
    pub name: Option<String>,
    /// The hosted domain (`hd`) of an account in one, whatever the scopes: a client that asked
    /// for a domain account must be able to check it.
    pub hosted_domain: Option<String>,
}

/// What `account` releases to a client holding `scopes`.
pub fn release(account: &AccountRecord, scopes: &Scopes) -> Released {
    let verified = account_usable(account) && account.state != AccountState::EmailUnverified;
    Released {
        sub: accounts::subject(&account.id),
        email: scopes.contains("email").then(|| (account.email.clone(), verified)),
        name: (scopes.contains("profile") && !account.name.is_empty())
            .then(|| account.name.clone()),
        hosted_domain: account.domain.clone(),
    }
}

/// Where the released facts are rendered, each in its own names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// ID tokens and `/oauth2/v3/userinfo`: `sub`, `email`, `email_verified`, `name`, `hd`.
    OpenIdConnect,
    /// Google's `Userinfoplus` (`/oauth2/v2/userinfo`): `id`, `email`, `verified_email`, `name`,
    /// `hd`.
    Userinfoplus,
    /// tokeninfo, where old and new client libraries read different names: `user_id` and `sub`,
    /// `email`, `verified_email` and `email_verified`; no name or domain.
    TokenInfo,
}

impl Released {
    /// Adds the released facts to `out` in the names of `names`.
    pub fn render_into(&self, names: Names, out: &mut Map<String, Value>) {
        match names {
            Names::OpenIdConnect => {
                out.insert("sub".into(), json!(self.sub));
            }
            Names::Userinfoplus => {
                out.insert("id".into(), json!(self.sub));
            }
            Names::TokenInfo => {
                out.insert("user_id".into(), json!(self.sub));
                out.insert("sub".into(), json!(self.sub));
            }
        }
        if let Some((email, verified)) = &self.email {
            out.insert("email".into(), json!(email));
            match names {
                Names::OpenIdConnect => {
                    out.insert("email_verified".into(), json!(verified));
                }
                Names::Userinfoplus => {
                    out.insert("verified_email".into(), json!(verified));
                }
                Names::TokenInfo => {
                    out.insert("verified_email".into(), json!(verified));
                    out.insert("email_verified".into(), json!(verified));
                }
            }
        }
        if names == Names::TokenInfo {
            return;
        }
        if let Some(name) = &self.name {
            out.insert("name".into(), json!(name));
        }
        if let Some(domain) = &self.hosted_domain {
            out.insert("hd".into(), json!(domain));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(state: AccountState, domain: Option<&str>) -> AccountRecord {
        AccountRecord {
            id: "a-1".to_owned(),
            email: "ann@example.com".to_owned(),
            name: "Ann".to_owned(),
            domain: domain.map(str::to_owned),
            password_hash: None,
            state,
            is_admin: false,
            totp_secret_enc: None,
            totp_last_step: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn scopes_decide_email_and_name() {
        let ann = account(AccountState::Active, Some("example.com"));
        let none = release(&ann, &Scopes::parse("openid"));
        assert_eq!(none.email, None);
        assert_eq!(none.name, None);
        assert_eq!(none.hosted_domain.as_deref(), Some("example.com"));
        let all = release(&ann, &Scopes::parse("openid email profile"));
        assert_eq!(all.email, Some(("ann@example.com".to_owned(), true)));
        assert_eq!(all.name.as_deref(), Some("Ann"));
    }

    #[test]
    fn unverified_addresses_say_so() {
        let ann = account(AccountState::EmailUnverified, None);
        let released = release(&ann, &Scopes::parse("email"));
        assert_eq!(released.email, Some(("ann@example.com".to_owned(), false)));
        assert_eq!(released.hosted_domain, None);
    }
}
