//! Token checks kept for a moment, so that a token presented many times a second is read from the
//! store once a second.
//!
//! What is kept is the store's answer to `find_live_token` (the credential with its grant, client
//! and account), never the validator's decision: [`crate::credentials::find_valid`] judges a kept
//! answer by the same rules as a fresh one. A kept answer is used only while both of these hold:
//!
//! - **No change through this process since it was read.** The store counts every committed write
//!   that may change such an answer ([`tessera_store::Store::changes`]: a revocation, a
//!   consumption, a disabled account, a deleted client, a revoked grant…). An answer is kept with
//!   the count read *before* the store was asked, so a write that commits while the read runs
//!   ends it too. A revocation through this node is therefore refused by the very next check.
//! - **Still the same second of the clock.** Writes through another node, or another process on
//!   the same SQLite file (the admin CLI), are not counted here; an answer read in second `s` is
//!   used only while the clock reads `s`, so such a change is seen within one second.
//!
//! Only answers that were found are kept (an unknown token costs a read each time), at most
//! `capacity` of them; `capacity` 0 keeps nothing. Registered clients (the record a client
//! authenticates against at the token and introspection endpoints), signed-in browser sessions
//! (a session cookie's session with its account), projects (an authorization's client's) and an
//! account's grants (whether an authorization needs a consent page) are kept by the same rules.
//!
//! Each kind has its own count ([`Answer`]), of the writes to what its answers are read from: a
//! client's answer ends with a change to a client, not with a spent code or a revoked token; a
//! session's ends with a change to a session, an account or a session cookie, not with a code
//! or token of another kind. Under a load that exchanges codes, the client and the session an
//! authorization reads are therefore read once a second, not once a request.

use std::collections::HashMap;
use std::sync::RwLock;

use tessera_store::{
    AccountRecord, Answer, ClientRecord, GrantRecord, LiveCredential, ProjectRecord, SessionRecord,
};

use crate::{Ctx, Result};

/// The answers kept of one kind: all read at one store change count in one second of the clock,
/// the only ones a check can use. An answer read later (a later second, or a write counted since)
/// replaces them all at once, so what is kept never outlives its second: after a burst of checks
/// of many tokens (ten thousand devices connecting, say) the memory they took goes with the next
/// answer kept instead of staying until the shelf is full.
struct Kept<T> {
    /// The second and change count the answers were read at.
    at: (i64, u64),
    answers: HashMap<String, T>,
}

/// Kept answers of one kind, by key.
struct Shelf<T> {
    /// What they are answers of: the store's change count for them decides how long they hold.
    of: Answer,
    kept: RwLock<Kept<T>>,
    /// The metric counting where this shelf's answers came from (`from` = `kept` or `store`).
    counter: Option<&'static str>,
}

impl<T: Clone> Shelf<T> {
    fn new(of: Answer, counter: Option<&'static str>) -> Shelf<T> {
        Shelf {
            of,
            kept: RwLock::new(Kept { at: (i64::MIN, 0), answers: HashMap::new() }),
            counter,
        }
    }

    /// The answer kept for `key`, if it was read at `changes` in the second `now`.
    fn get(&self, key: &str, changes: u64, now: i64) -> Option<T> {
        let kept = self.kept.read().unwrap_or_else(|e| e.into_inner());
        if kept.at != (now, changes) {
            return None;
        }
        kept.answers.get(key).cloned()
    }

    /// Keeps `value`, read at `changes` in the second `now`. An answer read at another second or
    /// count replaces those kept, except a straggler read just before them (an earlier count in
    /// the same second, or the second before), which no check made now could use and is not kept;
    /// a clock set back further starts afresh. When `capacity` are kept, all of them go.
    fn keep(&self, capacity: usize, key: &str, changes: u64, now: i64, value: &T) {
        let mut kept = self.kept.write().unwrap_or_else(|e| e.into_inner());
        let at = (now, changes);
        if at < kept.at && kept.at.0.saturating_sub(now) <= 1 {
            return;
        }
        if at != kept.at {
            *kept = Kept { at, answers: HashMap::new() };
        } else if kept.answers.len() >= capacity && !kept.answers.contains_key(key) {
            kept.answers = HashMap::new();
        }
        kept.answers.insert(key.to_owned(), value.clone());
    }

    fn len(&self) -> usize {
        self.kept.read().unwrap_or_else(|e| e.into_inner()).answers.len()
    }
}

/// This process's kept answers; one per [`Ctx`], shared by its clones.
pub struct Answers {
    /// How many of each kind are kept.
    capacity: usize,
    tokens: Shelf<LiveCredential>,
    clients: Shelf<ClientRecord>,
    sessions: Shelf<(SessionRecord, AccountRecord)>,
    projects: Shelf<ProjectRecord>,
    grants: Shelf<Vec<GrantRecord>>,
}

impl Answers {
    pub fn new(capacity: usize) -> Answers {
        Answers {
            capacity,
            tokens: Shelf::new(Answer::Token, Some("tessera_token_answers_total")),
            clients: Shelf::new(Answer::Client, None),
            sessions: Shelf::new(Answer::Session, None),
            projects: Shelf::new(Answer::Project, None),
            grants: Shelf::new(Answer::Grants, None),
        }
    }

    /// How many token checks are kept (usable or not).
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many signed-in sessions are kept (usable or not).
    pub fn sessions_len(&self) -> usize {
        self.sessions.len()
    }

    /// The store's change count for answers of kind `of`, when answers may be kept.
    fn changes(&self, ctx: &Ctx, of: Answer) -> Option<u64> {
        ctx.store.changes(of).filter(|_| self.capacity > 0)
    }
}

impl<T: Clone> Shelf<T> {
    /// `key`'s kept answer while it holds (see the module's text), else the store's, `read` (a
    /// lazy future, run only then, asked at `now`), kept if found.
    async fn kept_or_read(
        &self,
        ctx: &Ctx,
        now: i64,
        key: &str,
        read: impl std::future::Future<Output = tessera_store::Result<Option<T>>>,
        keep: bool,
    ) -> Result<Option<T>> {
        let answers = &ctx.answers;
        // Read before the store is asked, so that a write committed meanwhile ends the answer.
        let Some(changes) = answers.changes(ctx, self.of) else { return Ok(read.await?) };
        if let Some(kept) = self.get(key, changes, now) {
            if let Some(name) = self.counter {
                metrics::counter!(name, "from" => "kept").increment(1);
            }
            return Ok(Some(kept));
        }
        if let Some(name) = self.counter {
            metrics::counter!(name, "from" => "store").increment(1);
        }
        let found = read.await?;
        if let Some(value) = found.as_ref().filter(|_| keep) {
            self.keep(answers.capacity, key, changes, now, value);
        }
        Ok(found)
    }
}

/// The store's `find_live_token` answer for `digest` at the clock's now, from this process's kept
/// answers while they hold (see the module's text); a fresh answer is kept if `keep`.
pub(crate) async fn find_live_token(
    ctx: &Ctx,
    digest: &str,
    keep: bool,
) -> Result<Option<LiveCredential>> {
    let now = ctx.now();
    let read = ctx.store.credentials().find_live_token(digest, now);
    ctx.answers.tokens.kept_or_read(ctx, now, digest, read, keep).await
}

/// The registered client `client_id` (the store's `get_client`), kept by the same rules as token
/// checks: a client changed or deleted through this node is read again at once, through another
/// node within the second.
pub(crate) async fn get_client(ctx: &Ctx, client_id: &str) -> Result<Option<ClientRecord>> {
    let now = ctx.now();
    let read = ctx.store.projects().get_client(client_id);
    ctx.answers.clients.kept_or_read(ctx, now, client_id, read, true).await
}

/// The project `id` (the store's `get`), kept by the same rules as token checks: a project changed
/// through this node (verified or not) is read again at once, through another node within the
/// second. An authorization shows its client's project on the consent page and in its checks.
pub(crate) async fn get_project(ctx: &Ctx, id: &str) -> Result<Option<ProjectRecord>> {
    let now = ctx.now();
    let read = ctx.store.projects().get(id);
    ctx.answers.projects.kept_or_read(ctx, now, id, read, true).await
}

/// Every grant of the account `account_id` (the store's `list_by_account`), kept by the same rules
/// as token checks: a grant given, widened, revoked or used through this node is read again at
/// once, through another node within the second. An authorization that remembers consent per
/// project reads them to decide whether a consent page is needed; the code it issues is judged
/// at the exchange by the one validator, which reads the grant afresh.
pub(crate) async fn grants_of(ctx: &Ctx, account_id: &str) -> Result<Vec<GrantRecord>> {
    let now = ctx.now();
    let read = async { Ok(Some(ctx.store.grants().list_by_account(account_id).await?)) };
    Ok(ctx.answers.grants.kept_or_read(ctx, now, account_id, read, true).await?.unwrap_or_default())
}

/// The session a session cookie's `digest` signs in, with its account (the store's
/// `find_signed_in` at the clock's now), kept by the same rules as token checks: a sign-out, a
/// revoked session or a disabled account through this node is read again at once, through another
/// node within the second.
pub(crate) async fn find_signed_in(
    ctx: &Ctx,
    digest: &str,
) -> Result<Option<(SessionRecord, AccountRecord)>> {
    let now = ctx.now();
    let read = ctx.store.sessions().find_signed_in(digest, now);
    ctx.answers.sessions.kept_or_read(ctx, now, digest, read, true).await
}

#[cfg(test)]
mod tests {
    use tessera_store::{CredentialKind, CredentialRecord};

    use super::*;

    fn live(digest: &str) -> LiveCredential {
        LiveCredential {
            credential: CredentialRecord::new(digest.to_owned(), CredentialKind::AccessToken, 10),
            grant_revoked: false,
            grant_last_used_at: None,
            client_exists: true,
            account: None,
        }
    }

    #[test]
    fn an_answer_holds_for_its_count_and_its_second_only() {
        let answers = Shelf::new(Answer::Token, None);
        answers.keep(8, "d", 3, 100, &live("d"));
        assert_eq!(answers.get("d", 3, 100), Some(live("d")));
        assert_eq!(answers.get("d", 4, 100), None, "a counted write ends it");
        assert_eq!(answers.get("d", 3, 101), None, "the next second ends it");
        assert_eq!(answers.get("e", 3, 100), None);
    }

    #[test]
    fn a_later_answer_replaces_every_earlier_one() {
        let answers = Shelf::new(Answer::Token, None);
        answers.keep(8, "a", 1, 100, &live("a"));
        answers.keep(8, "b", 1, 100, &live("b"));
        assert_eq!(answers.len(), 2);
        answers.keep(8, "c", 2, 100, &live("c"));
        assert_eq!(answers.len(), 1, "a counted write: the earlier answers went");
        answers.keep(8, "d", 2, 101, &live("d"));
        assert_eq!(answers.len(), 1, "the next second: the earlier answers went");
        assert!(answers.get("d", 2, 101).is_some());
        answers.keep(8, "late", 1, 101, &live("late"));
        answers.keep(8, "older", 9, 100, &live("older"));
        assert_eq!(answers.len(), 1, "answers read before the kept ones are not kept");
        assert!(answers.get("late", 1, 101).is_none() && answers.get("d", 2, 101).is_some());
        answers.keep(8, "after-reset", 3, 50, &live("after-reset"));
        assert!(answers.get("after-reset", 3, 50).is_some(), "a clock set back keeps afresh");
        assert_eq!(answers.len(), 1);
    }

    #[test]
    fn a_full_cache_drops_everything() {
        let answers = Shelf::new(Answer::Token, None);
        answers.keep(2, "a", 2, 100, &live("a"));
        answers.keep(2, "b", 2, 100, &live("b"));
        answers.keep(2, "a", 2, 100, &live("a"));
        assert_eq!(answers.len(), 2, "a key kept again takes no room");
        answers.keep(2, "c", 2, 100, &live("c"));
        assert_eq!(answers.len(), 1, "full: all went");
        assert!(answers.get("c", 2, 100).is_some());
    }

    #[test]
    fn a_parallel_burst_of_new_answers_never_keeps_more_than_the_capacity() {
        let answers = std::sync::Arc::new(Shelf::new(Answer::Token, None));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let answers = answers.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        let key = format!("t{t}-{i}");
                        answers.keep(64, &key, 7, 100, &live(&key));
                        assert!(answers.len() <= 64, "over the capacity mid-burst");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!((1..=64).contains(&answers.len()), "{} kept", answers.len());
    }
}
