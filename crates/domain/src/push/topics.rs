//! Topics: a sender subscribes a registration id to `/topics/<name>` of its project (the Instance
//! ID API's relation maps), and a send to the topic fans out to every subscribed registration
//! through the ordinary send path (a page of subscribers read together by
//! [`super::lookup_many`], then sent to together by [`super::deliver`]): the one validator, the
//! quotas, the per-registration storage limits and the wake-up, exactly as a send to those ids.
//!
//! A subscription row keeps the registration id's digest and the id sealed under the
//! key-encryption key (bound to the digest), never the id in the clear: the fan-out opens it and
//! sends to the id, so a registration whose device, account or project is gone, or that
//! unregistered, is skipped like any `NotRegistered` recipient.

use tessera_proto_push::{self as wire, Message, Outcome, RegisterError, SendError};
use tessera_store::{PushTopicRecord, Subscribed};

use super::{Device, Lookup, Sender, lookup};

use crate::{Ctx, Result};

/// Why a subscription change was refused, with the Instance ID API's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    /// A malformed topic name.
    InvalidArgument,
    /// The registration id is unknown, not registered, or not one the sender may send to.
    NotFound,
    /// The registration is subscribed to as many topics as allowed.
    TooManyTopics,
}

impl TopicError {
    pub fn as_str(self) -> &'static str {
        match self {
            TopicError::InvalidArgument => "INVALID_ARGUMENT",
            TopicError::NotFound => "NOT_FOUND",
            TopicError::TooManyTopics => "TOO_MANY_TOPICS",
        }
    }
}

/// Subscriptions read per page during a fan-out.
const PAGE: u32 = 500;

fn sealed_aad(digest: &str) -> Vec<u8> {
    format!("push-topic-registration\n{digest}").into_bytes()
}

/// Subscribes `registration_id` to `topic` of each of the sender's projects the registration
/// accepts messages from.
pub async fn subscribe(
    ctx: &Ctx,
    sender: &Sender,
    registration_id: &str,
    topic: &str,
) -> Result<Result<(), TopicError>> {
    if !wire::valid_topic(topic) {
        return Ok(Err(TopicError::InvalidArgument));
    }
    let Lookup::Live { record, data } = lookup(ctx, registration_id).await? else {
        return Ok(Err(TopicError::NotFound));
    };
    let projects: Vec<&String> =
        data.senders.iter().filter(|it| sender.sender_ids.contains(it)).collect();
    if projects.is_empty() {
        return Ok(Err(TopicError::NotFound));
    }
    subscribe_in(ctx, &projects, &record.digest, registration_id, topic).await
}

/// Subscribes the registration `registration_id` (whose digest is `digest`) to `topic` of each of
/// `projects`, within the per-registration cap.
async fn subscribe_in(
    ctx: &Ctx,
    projects: &[&String],
    digest: &str,
    registration_id: &str,
    topic: &str,
) -> Result<Result<(), TopicError>> {
    let sealed = ctx
        .kek
        .seal(ctx.rng.as_ref(), &sealed_aad(digest), registration_id.as_bytes())
        .map_err(|err| crate::Error::Internal(err.to_string()))?;
    for project_id in projects {
        let subscription = PushTopicRecord {
            project_id: (*project_id).clone(),
            topic: topic.to_owned(),
            registration: digest.to_owned(),
            sealed_id: sealed.clone(),
            created_at: ctx.now(),
        };
        let max = ctx.policy.push.max_topics_per_registration;
        if ctx.store.push().subscribe(&subscription, max).await? == Subscribed::TooMany {
            return Ok(Err(TopicError::TooManyTopics));
        }
    }
    Ok(Ok(()))
}

/// A device subscribes one of its registrations to `/topics/<name>` through `register3` (or
/// unsubscribes it), as Android's and iOS's messaging libraries do. The registration must be live,
/// made by this device (its grant or install credential, not only its device id) and for the
/// named app; the subscription is made in every sender project the registration accepts, so each
/// of them reaches it with a topic send. A registration that fails any of these is
/// `INVALID_SENDER` (its `sender` field names it), a registration on as many topics as allowed
/// `TOO_MANY_TOPICS`.
pub async fn change_from_device(
    ctx: &Ctx,
    device: &Device,
    change: &wire::TopicChange,
) -> Result<Result<(), RegisterError>> {
    let Lookup::Live { record, data } = lookup(ctx, &change.registration_id).await? else {
        return Ok(Err(RegisterError::InvalidSender));
    };
    if !super::owns(device, &record, &data) || data.app != change.app {
        return Ok(Err(RegisterError::InvalidSender));
    }
    if change.delete {
        for project_id in &data.senders {
            ctx.store.push().unsubscribe(project_id, &change.topic, &record.digest).await?;
        }
        return Ok(Ok(()));
    }
    let projects: Vec<&String> = data.senders.iter().collect();
    let subscribed =
        subscribe_in(ctx, &projects, &record.digest, &change.registration_id, &change.topic)
            .await?;
    Ok(subscribed.map_err(|err| match err {
        TopicError::TooManyTopics => RegisterError::TooManyTopics,
        TopicError::InvalidArgument | TopicError::NotFound => RegisterError::InvalidParameters,
    }))
}

/// Unsubscribes `registration_id` from `topic` of the sender's projects. Unsubscribing what is
/// not subscribed is no error; an id that was never issued is `NotFound`.
pub async fn unsubscribe(
    ctx: &Ctx,
    sender: &Sender,
    registration_id: &str,
    topic: &str,
) -> Result<Result<(), TopicError>> {
    if !wire::valid_topic(topic) {
        return Ok(Err(TopicError::InvalidArgument));
    }
    if matches!(lookup(ctx, registration_id).await?, Lookup::Unknown) {
        return Ok(Err(TopicError::NotFound));
    }
    let digest = tessera_crypto::digest::token_digest(registration_id);
    for project_id in &sender.sender_ids {
        ctx.store.push().unsubscribe(project_id, topic, &digest).await?;
    }
    Ok(Ok(()))
}

/// A topic message id: a positive integer below 2^53, so that every JSON reader keeps it exact.
fn topic_message_id(ctx: &Ctx) -> u64 {
    let mut bytes = [0u8; 8];
    ctx.rng.fill(&mut bytes);
    (u64::from_be_bytes(bytes) >> 11).max(1)
}

/// Sends `message` to every live registration subscribed to `topic` of the sender's projects,
/// each through the ordinary send path (its `from` is `/topics/<topic>`). Answers the topic
/// message id, or the message-level `problem`; `TopicsMessageRateExceeded` when the sender's
/// quota stopped the fan-out before any recipient got the message. A `dry_run` validates only.
pub async fn send(
    ctx: &Ctx,
    sender: &Sender,
    topic: &str,
    message: &Message,
    problem: Option<SendError>,
) -> Result<Result<u64, SendError>> {
    if let Some(code) = problem {
        return Ok(Err(code));
    }
    let message_id = topic_message_id(ctx);
    if message.dry_run {
        return Ok(Ok(message_id));
    }
    let from = format!("/topics/{topic}");
    let mut accepted = 0u64;
    for project_id in &sender.sender_ids {
        let mut after = String::new();
        loop {
            let page = ctx.store.push().subscribers(project_id, topic, &after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.registration.clone();
            let opened: Vec<(PushTopicRecord, String)> = page
                .into_iter()
                .filter_map(|subscription| match open(ctx, &subscription) {
                    Some(id) => Some((subscription, id)),
                    None => {
                        tracing::warn!(topic, "a topic subscription does not open; skipped");
                        None
                    }
                })
                .collect();
            let ids: Vec<String> = opened.iter().map(|(_, id)| id.clone()).collect();
            let found = super::lookup_many(ctx, &ids).await?;
            let recipients = ids.iter().map(String::as_str).zip(found).collect();
            let outcomes = super::deliver(ctx, sender, recipients, message, Some(&from)).await?;
            for ((subscription, _), outcome) in opened.into_iter().zip(outcomes) {
                match outcome {
                    Outcome::Accepted { .. } => accepted += 1,
                    Outcome::Failed(SendError::QuotaExceeded) => {
                        return Ok(if accepted == 0 {
                            Err(SendError::TopicsMessageRateExceeded)
                        } else {
                            Ok(message_id)
                        });
                    }
                    Outcome::Failed(SendError::NotRegistered) => {
                        // Unregistered or its device is gone: it leaves the topic.
                        ctx.store
                            .push()
                            .unsubscribe(project_id, topic, &subscription.registration)
                            .await?;
                    }
                    Outcome::Failed(_) => {}
                }
            }
        }
    }
    Ok(Ok(message_id))
}

/// The registration id a subscription row seals, if it opens and names that row's digest.
fn open(ctx: &Ctx, subscription: &PushTopicRecord) -> Option<String> {
    let bytes =
        ctx.kek.open(&sealed_aad(&subscription.registration), &subscription.sealed_id).ok()?;
    let id = String::from_utf8(bytes).ok()?;
    (tessera_crypto::digest::token_digest(&id) == subscription.registration).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::Presented;
    use crate::credentials::Recurrence;
    use crate::push::{Api, authenticate_sender, create_api_key, pending, register_new_install};
    use crate::testing::TestCtx;

    fn request(app: &str, senders: &[&str]) -> wire::Register {
        wire::Register {
            app: app.to_owned(),
            device: "42".to_owned(),
            senders: senders.iter().map(|it| (*it).to_owned()).collect(),
            cert: String::new(),
            delete: false,
        }
    }

    async fn sender(t: &TestCtx, project_id: &str) -> Sender {
        let key = create_api_key(&t.ctx, project_id, "server").await.expect("key");
        authenticate_sender(&t.ctx, Api::Gcm, &Presented::ApiKey(key))
            .await
            .expect("auth")
            .expect("sender")
    }

    /// A registration of a new install for `project_id`: its id and install credential.
    async fn registration(t: &TestCtx, app: &str, project_id: &str) -> (String, String) {
        register_new_install(&t.ctx, &request(app, &[project_id]))
            .await
            .expect("register")
            .expect("registered")
    }

    fn data(text: &str) -> Message {
        Message { data: vec![("text".to_owned(), text.to_owned())], ..Message::default() }
    }

    #[tokio::test]
    async fn a_topic_send_reaches_every_live_subscriber_once() {
        let t = TestCtx::new().await;
        t.account("owner@example.com").create().await;
        let project = t.project("Pushy", "owner@example.com").await.id;
        let sender = sender(&t, &project).await;
        let (a, _) = registration(&t, "com.example.a", &project).await;
        let (b, install_b) = registration(&t, "com.example.b", &project).await;
        let (c, _) = registration(&t, "com.example.c", &project).await;
        for id in [&a, &b, &c] {
            assert_eq!(subscribe(&t.ctx, &sender, id, "news").await.expect("sub"), Ok(()));
        }
        assert_eq!(subscribe(&t.ctx, &sender, &a, "news").await.expect("again"), Ok(()));
        assert_eq!(unsubscribe(&t.ctx, &sender, &c, "news").await.expect("unsub"), Ok(()));

        let sent = send(&t.ctx, &sender, "news", &data("one"), None).await.expect("send");
        let id = sent.expect("a topic message id");
        assert!(id > 0 && id < 1 << 53);
        for (registration, expected) in [(&a, 1), (&b, 1), (&c, 0)] {
            let waiting = pending(&t.ctx, registration, 10).await.expect("pending");
            assert_eq!(waiting.len(), expected);
            if let Some(first) = waiting.first() {
                let payload: serde_json::Value =
                    serde_json::from_str(&first.payload).expect("json");
                assert_eq!(payload["from"], "/topics/news");
                assert_eq!(payload["data"]["text"], "one");
            }
        }

        // A revoked install and an unregistered app drop out of the fan-out.
        assert!(crate::push::revoke_install(&t.ctx, &install_b).await.expect("revoke"));
        let sent = send(&t.ctx, &sender, "news", &data("two"), None).await.expect("send");
        assert!(sent.is_ok());
        assert_eq!(pending(&t.ctx, &a, 10).await.expect("pending").len(), 2);
        assert_eq!(pending(&t.ctx, &b, 10).await.expect("pending").len(), 1, "b is gone");
        let left = t.ctx.store.push().subscribers(&project, "news", "", 10).await.expect("subs");
        assert_eq!(left.len(), 1, "the revoked registration left the topic");

        // A message-level problem and a dry run store nothing.
        let bad = send(&t.ctx, &sender, "news", &data("x"), Some(SendError::MessageTooBig)).await;
        assert_eq!(bad.expect("send"), Err(SendError::MessageTooBig));
        let dry = Message { dry_run: true, ..data("dry") };
        assert!(send(&t.ctx, &sender, "news", &dry, None).await.expect("send").is_ok());
        assert_eq!(pending(&t.ctx, &a, 10).await.expect("pending").len(), 2);
        // Nobody on the topic: still a message id.
        assert!(send(&t.ctx, &sender, "empty", &data("x"), None).await.expect("send").is_ok());
    }

    #[tokio::test]
    async fn subscriptions_are_refused_for_strangers_and_bad_names() {
        let t = TestCtx::new().await;
        t.account("owner@example.com").create().await;
        let mine = t.project("Mine", "owner@example.com").await.id;
        let theirs = t.project("Theirs", "owner@example.com").await.id;
        let sender = sender(&t, &mine).await;
        let (other, _) = registration(&t, "com.example.a", &theirs).await;
        let (own, _) = registration(&t, "com.example.b", &mine).await;
        let refused = subscribe(&t.ctx, &sender, &other, "news").await.expect("sub");
        assert_eq!(refused, Err(TopicError::NotFound), "another sender's registration");
        let unknown = subscribe(&t.ctx, &sender, "APA91bnope", "news").await.expect("sub");
        assert_eq!(unknown, Err(TopicError::NotFound));
        let unknown = unsubscribe(&t.ctx, &sender, "APA91bnope", "news").await.expect("unsub");
        assert_eq!(unknown, Err(TopicError::NotFound));
        for bad in ["", "a b", "x/y", &"n".repeat(901)] {
            let got = subscribe(&t.ctx, &sender, &own, bad).await.expect("sub");
            assert_eq!(got, Err(TopicError::InvalidArgument), "{bad:?}");
        }
        // Someone else's topic of the same name is not reached.
        let theirs_sender = super::super::Sender {
            sender_ids: vec![theirs.clone()],
            quota_key: format!("project:{theirs}"),
        };
        subscribe(&t.ctx, &theirs_sender, &other, "news").await.expect("sub").expect("ok");
        send(&t.ctx, &sender, "news", &data("x"), None).await.expect("send").expect("id");
        assert!(pending(&t.ctx, &other, 10).await.expect("pending").is_empty());
    }

    #[tokio::test]
    async fn the_sender_quota_stops_a_fan_out_and_then_refuses_the_topic() {
        let t = TestCtx::with_policy(|policy| policy.push.sender_per_minute = 2).await;
        t.account("owner@example.com").create().await;
        let project = t.project("Pushy", "owner@example.com").await.id;
        let sender = sender(&t, &project).await;
        let mut ids = Vec::new();
        for app in ["com.example.a", "com.example.b", "com.example.c"] {
            let (id, _) = registration(&t, app, &project).await;
            subscribe(&t.ctx, &sender, &id, "news").await.expect("sub").expect("ok");
            ids.push(id);
        }
        let sent = send(&t.ctx, &sender, "news", &data("x"), None).await.expect("send");
        assert!(sent.is_ok(), "two of three got it: still a message id");
        let mut reached = 0;
        for id in &ids {
            reached += pending(&t.ctx, id, 10).await.expect("pending").len();
        }
        assert_eq!(reached, 2);
        let refused = send(&t.ctx, &sender, "news", &data("y"), None).await.expect("send");
        assert_eq!(refused, Err(SendError::TopicsMessageRateExceeded));
        t.advance(60);
        assert!(send(&t.ctx, &sender, "news", &data("z"), None).await.expect("send").is_ok());
    }

    #[tokio::test]
    async fn unregistering_drops_the_subscriptions_and_the_cap_holds() {
        let t = TestCtx::with_policy(|policy| policy.push.max_topics_per_registration = 2).await;
        t.account("owner@example.com").create().await;
        let project = t.project("Pushy", "owner@example.com").await.id;
        let sender = sender(&t, &project).await;
        let (id, install) = registration(&t, "com.example.a", &project).await;
        subscribe(&t.ctx, &sender, &id, "a").await.expect("sub").expect("ok");
        subscribe(&t.ctx, &sender, &id, "b").await.expect("sub").expect("ok");
        let third = subscribe(&t.ctx, &sender, &id, "c").await.expect("sub");
        assert_eq!(third, Err(TopicError::TooManyTopics));

        let device = crate::push::authenticate_device(&t.ctx, "42", &install, Recurrence::Often)
            .await
            .expect("auth");
        let device = device.expect("device");
        crate::push::unregister(&t.ctx, &device, "com.example.a").await.expect("unregister");
        assert!(t.ctx.store.push().subscribers(&project, "a", "", 10).await.expect("s").is_empty());
        // Registering again brings the same id back, subscribed to nothing.
        let again = crate::push::register(&t.ctx, &device, &request("com.example.a", &[&project]))
            .await
            .expect("register")
            .expect("registered");
        assert_eq!(again, id);
        send(&t.ctx, &sender, "a", &data("x"), None).await.expect("send").expect("id");
        assert!(pending(&t.ctx, &id, 10).await.expect("pending").is_empty());
    }

    fn change(app: &str, id: &str, topic: &str, delete: bool) -> wire::TopicChange {
        wire::TopicChange {
            app: app.to_owned(),
            device: "42".to_owned(),
            registration_id: id.to_owned(),
            topic: topic.to_owned(),
            delete,
        }
    }

    async fn by_device(
        t: &TestCtx,
        device: &Device,
        app: &str,
        id: &str,
        topic: &str,
        delete: bool,
    ) -> std::result::Result<(), RegisterError> {
        let change = change(app, id, topic, delete);
        change_from_device(&t.ctx, device, &change).await.expect("store")
    }

    /// A device subscribes its own registration from `register3`; a topic send of any sender
    /// project the registration accepts reaches it, and it may leave again. Another install under
    /// the same device id, another app's name or an unknown id is `INVALID_SENDER`.
    #[tokio::test]
    async fn a_device_subscribes_its_own_registrations_only() {
        let t = TestCtx::new().await;
        t.account("owner@example.com").create().await;
        let project = t.project("Pushy", "owner@example.com").await.id;
        let sender = sender(&t, &project).await;
        let (mine, install) = registration(&t, "com.example.a", &project).await;
        let (theirs, _) = registration(&t, "com.example.b", &project).await;
        let device = crate::push::authenticate_device(&t.ctx, "42", &install, Recurrence::Often)
            .await
            .expect("auth");
        let device = device.expect("device");

        let ok = by_device(&t, &device, "com.example.a", &mine, "news", false).await;
        assert_eq!(ok, Ok(()));
        send(&t.ctx, &sender, "news", &data("one"), None).await.expect("send").expect("id");
        let waiting = pending(&t.ctx, &mine, 10).await.expect("pending");
        assert_eq!(waiting.len(), 1);
        let payload: serde_json::Value = serde_json::from_str(&waiting[0].payload).expect("json");
        assert_eq!(payload["from"], "/topics/news");

        for (app, id) in [
            ("com.example.b", theirs.as_str()),
            ("com.example.b", mine.as_str()),
            ("com.example.a", "APA91bnope"),
        ] {
            let refused = by_device(&t, &device, app, id, "news", false).await;
            assert_eq!(refused, Err(RegisterError::InvalidSender), "{app}");
        }
        assert!(
            t.ctx.store.push().subscribers(&project, "news", "", 10).await.expect("s").len() == 1
        );

        let left = by_device(&t, &device, "com.example.a", &mine, "news", true).await;
        assert_eq!(left, Ok(()));
        send(&t.ctx, &sender, "news", &data("two"), None).await.expect("send").expect("id");
        assert_eq!(pending(&t.ctx, &mine, 10).await.expect("pending").len(), 1, "not reached");
        // Leaving what it is not on is no error.
        let again = by_device(&t, &device, "com.example.a", &mine, "news", true).await;
        assert_eq!(again, Ok(()));
    }

    /// A burst of subscriptions from the device to different topics keeps the per-registration
    /// cap: exactly the cap succeed, the rest are `TOO_MANY_TOPICS`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_device_subscriptions_keeps_the_cap() {
        let t = TestCtx::with_policy(|policy| policy.push.max_topics_per_registration = 3).await;
        t.account("owner@example.com").create().await;
        let project = t.project("Pushy", "owner@example.com").await.id;
        let (id, install) = registration(&t, "com.example.a", &project).await;
        let device = crate::push::authenticate_device(&t.ctx, "42", &install, Recurrence::Often)
            .await
            .expect("auth");
        let device = device.expect("device");
        let mut burst = tokio::task::JoinSet::new();
        for i in 0..12 {
            let (ctx, device) = (t.ctx.clone(), device.clone());
            let change = change("com.example.a", &id, &format!("t{i}"), false);
            burst.spawn(
                async move { change_from_device(&ctx, &device, &change).await.expect("store") },
            );
        }
        let results = burst.join_all().await;
        assert_eq!(results.iter().filter(|it| it.is_ok()).count(), 3, "{results:?}");
        assert!(
            results.iter().all(|it| matches!(it, Ok(()) | Err(RegisterError::TooManyTopics))),
            "{results:?}"
        );
    }
}
