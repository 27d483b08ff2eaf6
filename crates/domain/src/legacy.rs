//! Moving applications off the legacy protocols (AuthSub, ClientLogin, OAuth 1.0, OpenID 2.0):
//! which applications still use each ([`usage`]: live grants, accounts, last use and request
//! counts), and the deprecation switches ([`gate`]: from a protocol's, or one application's,
//! "warn from" date its answers carry deprecation headers; from its "refuse from" date it is
//! refused with the protocol's own error and a link to the migration page).
//!
//! Request counts are kept per node in memory ([`Tally`]) and added to the store's row for
//! (protocol, application, UTC day) at most every [`FLUSH_EVERY_SECS`], and whenever the usage is
//! read on this node, so counting costs a legacy request no write of its own.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::json;
use tessera_crypto::civil;
use tessera_store::{DeprecationRecord, RequestCount};

use crate::audit::{self, Actor};
use crate::credentials::Protocol;

use crate::{Ctx, Error, Result, accounts};

/// The legacy protocols this module covers.
pub const PROTOCOLS: [Protocol; 4] =
    [Protocol::AuthSub, Protocol::ClientLogin, Protocol::OAuth1, Protocol::OpenId2];

/// How often a node adds its counted requests to the store.
pub const FLUSH_EVERY_SECS: i64 = 60;
/// The days of requests [`usage`] sums.
pub const USAGE_DAYS: i64 = 30;
const DAY_SECS: i64 = 86_400;
/// Client ids longer than this are counted under their first this many characters.
const MAX_CLIENT_CHARS: usize = 200;

/// From when a protocol, or one application's use of it, is warned about or refused (unix
/// seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Dates {
    pub warn_from: Option<i64>,
    pub refuse_from: Option<i64>,
}

impl Dates {
    /// These dates, each missing one taken from `fallback`.
    fn or(self, fallback: Dates) -> Dates {
        Dates {
            warn_from: self.warn_from.or(fallback.warn_from),
            refuse_from: self.refuse_from.or(fallback.refuse_from),
        }
    }
}

/// The deployment's deprecation settings (`[legacy]` in the configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deprecations {
    pub authsub: Dates,
    pub clientlogin: Dates,
    pub oauth1: Dates,
    pub openid2: Dates,
    /// Where warned and refused answers point; empty: this server's `/accounts/LegacyMigration`.
    pub migration_url: String,
}

impl Deprecations {
    pub fn of(&self, protocol: Protocol) -> Dates {
        match protocol {
            Protocol::AuthSub => self.authsub,
            Protocol::ClientLogin => self.clientlogin,
            Protocol::OAuth1 => self.oauth1,
            Protocol::OpenId2 => self.openid2,
            _ => Dates::default(),
        }
    }
}

/// The migration page warned and refused answers link to.
pub fn migration_url(ctx: &Ctx) -> String {
    match ctx.policy.deprecation.migration_url.as_str() {
        "" => format!("{}/accounts/LegacyMigration", ctx.public_url),
        url => url.to_owned(),
    }
}

/// What a deprecated answer says: since when the protocol is deprecated for this application,
/// when it stops (if set), and where to read how to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub deprecated_from: i64,
    pub sunset: Option<i64>,
    pub link: String,
}

/// Whether a legacy request goes ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// It goes ahead; the answer carries the deprecation headers.
    Warned(Notice),
    /// It is refused with the protocol's own error, carrying the link.
    Refused(Notice),
}

/// The dates that apply to `client_id`'s use of `protocol`: its own, each missing one taken from
/// the protocol's.
pub async fn dates(ctx: &Ctx, protocol: Protocol, client_id: Option<&str>) -> Result<Dates> {
    let configured = ctx.policy.deprecation.of(protocol);
    let Some(client_id) = client_id else { return Ok(configured) };
    let own = ctx.store.legacy().get_deprecation(protocol.as_str(), &capped(client_id)).await?;
    Ok(match own {
        Some(own) => {
            Dates { warn_from: own.warn_from, refuse_from: own.refuse_from }.or(configured)
        }
        None => configured,
    })
}

/// The one deprecation decision, by the `Ctx` clock: refused from `refuse_from`, warned from
/// `warn_from` (or, without one, from `refuse_from` on, which is refused anyway), allowed before.
pub fn decide(ctx: &Ctx, dates: Dates) -> Verdict {
    let now = ctx.now();
    let notice = |deprecated_from: i64| Notice {
        deprecated_from,
        sunset: dates.refuse_from,
        link: migration_url(ctx),
    };
    if let Some(refuse_from) = dates.refuse_from
        && now >= refuse_from
    {
        return Verdict::Refused(notice(dates.warn_from.unwrap_or(refuse_from).min(refuse_from)));
    }
    match dates.warn_from {
        Some(warn_from) if now >= warn_from => Verdict::Warned(notice(warn_from)),
        _ => Verdict::Allowed,
    }
}

/// A legacy request of `client_id` (when the endpoint knows it) through `protocol`'s main
/// endpoint: counts it, and answers whether it goes ahead.
pub async fn gate(ctx: &Ctx, protocol: Protocol, client_id: Option<&str>) -> Result<Verdict> {
    count(ctx, protocol, client_id.unwrap_or_default()).await?;
    let dates = dates(ctx, protocol, client_id).await?;
    Ok(decide(ctx, dates))
}

fn capped(client_id: &str) -> String {
    client_id.chars().take(MAX_CLIENT_CHARS).collect()
}

/// Sets (or, with neither date, clears) one application's dates for one protocol.
pub async fn set_deprecation(
    ctx: &Ctx,
    protocol: Protocol,
    client_id: &str,
    dates: Dates,
    actor: &Actor,
) -> Result<()> {
    if !PROTOCOLS.contains(&protocol) {
        return Err(Error::Invalid(format!("{} is not a legacy protocol.", protocol.as_str())));
    }
    let client_id = client_id.trim();
    if client_id.is_empty() || client_id.chars().count() > MAX_CLIENT_CHARS {
        return Err(Error::Invalid("Name the application by its client id.".to_owned()));
    }
    if let (Some(warn), Some(refuse)) = (dates.warn_from, dates.refuse_from)
        && warn > refuse
    {
        return Err(Error::Invalid("The warn-from date must not be after refuse-from.".to_owned()));
    }
    if dates == Dates::default() {
        ctx.store.legacy().clear_deprecation(protocol.as_str(), client_id).await?;
    } else {
        let record = DeprecationRecord {
            protocol: protocol.as_str().to_owned(),
            client_id: client_id.to_owned(),
            warn_from: dates.warn_from,
            refuse_from: dates.refuse_from,
            updated_at: ctx.now(),
        };
        ctx.store.legacy().set_deprecation(&record).await?;
    }
    audit::record(
        ctx,
        "legacy.deprecate",
        None,
        actor,
        "",
        json!({ "protocol": protocol.as_str(), "client": client_id, "warn_from": dates.warn_from, "refuse_from": dates.refuse_from }),
    )
    .await
}

/// Legacy requests counted on this node and not yet in the store.
#[derive(Debug, Default)]
pub struct Tally {
    pending: Mutex<HashMap<(Protocol, String, i64), u64>>,
    flushed_at: AtomicI64,
}

async fn count(ctx: &Ctx, protocol: Protocol, client_id: &str) -> Result<()> {
    let now = ctx.now();
    let key = (protocol, capped(client_id), now.div_euclid(DAY_SECS));
    {
        let mut pending = ctx.legacy_tally.pending.lock().map_err(|_| poisoned())?;
        *pending.entry(key).or_default() += 1;
    }
    let last = ctx.legacy_tally.flushed_at.load(Ordering::Acquire);
    if now - last >= FLUSH_EVERY_SECS
        && ctx
            .legacy_tally
            .flushed_at
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    {
        flush(ctx).await?;
    }
    Ok(())
}

fn poisoned() -> Error {
    Error::Internal("legacy request tally poisoned".to_owned())
}

/// Adds this node's counted requests to the store, in one transaction.
pub async fn flush(ctx: &Ctx) -> Result<()> {
    let taken = std::mem::take(&mut *ctx.legacy_tally.pending.lock().map_err(|_| poisoned())?);
    let counts: Vec<RequestCount> = taken
        .into_iter()
        .map(|((protocol, client_id, day), requests)| RequestCount {
            protocol: protocol.as_str().to_owned(),
            client_id,
            day,
            requests,
        })
        .collect();
    Ok(ctx.store.legacy().add_requests(&counts).await?)
}

/// One application's use of one protocol.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub protocol: String,
    pub client_id: String,
    /// Registered name, or the client id.
    pub name: String,
    pub registered: bool,
    /// Live grants.
    pub grants: u64,
    /// Accounts with a live grant.
    pub accounts: u64,
    pub last_used_at: Option<i64>,
    /// Requests counted in the last [`USAGE_DAYS`] days.
    pub requests: u64,
    /// Requests counted today (UTC).
    pub requests_today: u64,
    /// The dates that apply to it (its own, or the protocol's).
    pub dates: Dates,
    /// Whether it has dates of its own.
    pub own_dates: bool,
}

/// Every (protocol, client) pair with live grants, counted requests or dates of its own, sorted
/// by protocol then client. Walks all accounts, so it is meant for the administrators' command
/// line and console, not for a request path. This node's counted requests are flushed first.
pub async fn usage(ctx: &Ctx) -> Result<Vec<Usage>> {
    flush(ctx).await?;
    let names: Vec<&str> = PROTOCOLS.iter().map(|it| it.as_str()).collect();
    let mut by_key: BTreeMap<(String, String), Usage> = BTreeMap::new();
    let blank = |protocol: &str, client_id: &str| Usage {
        protocol: protocol.to_owned(),
        client_id: client_id.to_owned(),
        name: client_id.to_owned(),
        registered: false,
        grants: 0,
        accounts: 0,
        last_used_at: None,
        requests: 0,
        requests_today: 0,
        dates: Dates::default(),
        own_dates: false,
    };
    let mut offset = 0;
    loop {
        let page = accounts::list(ctx, offset, 200).await?;
        for account in &page {
            let mut seen = std::collections::HashSet::new();
            for grant in ctx.store.grants().list_by_account(&account.id).await? {
                if grant.revoked_at.is_some() || !names.contains(&grant.protocol.as_str()) {
                    continue;
                }
                let key = (grant.protocol.clone(), grant.client_id.clone());
                let entry = by_key
                    .entry(key.clone())
                    .or_insert_with(|| blank(&grant.protocol, &grant.client_id));
                entry.grants += 1;
                if seen.insert(key) {
                    entry.accounts += 1;
                }
                entry.last_used_at = entry.last_used_at.max(grant.last_used_at);
            }
        }
        if page.len() < 200 {
            break;
        }
        offset += 200;
    }
    let today = ctx.now().div_euclid(DAY_SECS);
    for count in ctx.store.legacy().request_counts(today - (USAGE_DAYS - 1)).await? {
        let key = (count.protocol.clone(), count.client_id.clone());
        let entry = by_key.entry(key).or_insert_with(|| blank(&count.protocol, &count.client_id));
        entry.requests += count.requests;
        if count.day == today {
            entry.requests_today += count.requests;
        }
    }
    for own in ctx.store.legacy().list_deprecations().await? {
        let key = (own.protocol.clone(), own.client_id.clone());
        by_key.entry(key).or_insert_with(|| blank(&own.protocol, &own.client_id)).own_dates = true;
    }
    let mut out: Vec<Usage> = by_key.into_values().collect();
    for usage in &mut out {
        if let Some(client) = ctx.store.projects().get_client(&usage.client_id).await? {
            usage.name = client.name;
            usage.registered = true;
        }
        if let Some(protocol) = Protocol::parse(&usage.protocol) {
            let client = Some(usage.client_id.as_str()).filter(|it| !it.is_empty());
            usage.dates = dates(ctx, protocol, client).await?;
        }
    }
    Ok(out)
}

/// A date as the configuration and the command line take it: unix seconds, an RFC 3339 date
/// (`2027-06-01`, midnight UTC) or an RFC 3339 date-time in UTC or with an offset
/// (`2027-06-01T12:00:00Z`, `2027-06-01T14:00:00+02:00`; fractions of a second ignored).
pub fn parse_date(text: &str) -> Option<i64> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let number = |s: &str| -> Option<i64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
    };
    let (date, time) = match text.split_once(['T', 't', ' ']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let year = number(year)?;
    let (month, day) = (u32::try_from(number(month)?).ok()?, u32::try_from(number(day)?).ok()?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // A day the month does not have (30 February) does not come back as itself.
    let days = civil::days_from_civil(year, month, day);
    if civil::civil_from_days(days) != (year, month, day) {
        return None;
    }
    let midnight = days * DAY_SECS;
    let Some(time) = time else { return Some(midnight) };
    let (clock, offset) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (clock, zone) = time.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (hours, minutes) = zone[1..].split_once(':')?;
        let (hours, minutes) = (number(hours)?, number(minutes)?);
        if hours.to_string().len() > 2 || hours > 23 || minutes > 59 {
            return None;
        }
        (clock, sign * (hours * 3600 + minutes * 60))
    };
    let clock = clock.split('.').next()?;
    let mut fields = clock.split(':');
    let (h, m, s) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() || h.len() != 2 || m.len() != 2 || s.len() != 2 {
        return None;
    }
    let (h, m, s) = (number(h)?, number(m)?, number(s)?);
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(midnight + h * 3600 + m * 60 + s - offset)
}

/// Unix seconds as an HTTP-date (RFC 9110 §5.6.7), as the `Sunset` header carries it.
pub fn http_date(at: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = at.div_euclid(DAY_SECS);
    let secs = at.rem_euclid(DAY_SECS);
    let (year, month, day) = civil::civil_from_days(days);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Unix seconds as an RFC 3339 date-time in UTC (for the console and the command line).
pub fn rfc3339(at: i64) -> String {
    let (year, month, day) = civil::civil_from_days(at.div_euclid(DAY_SECS));
    let secs = at.rem_euclid(DAY_SECS);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestCtx;

    #[test]
    fn dates_parse_and_format() {
        assert_eq!(parse_date("1795219200"), Some(1_795_219_200));
        assert_eq!(parse_date("2026-11-21"), Some(1_795_219_200));
        assert_eq!(parse_date("2026-11-21T00:00:00Z"), Some(1_795_219_200));
        assert_eq!(parse_date("2026-11-21T02:00:00.5+02:00"), Some(1_795_219_200));
        assert_eq!(parse_date("2024-02-29"), Some(1_709_164_800));
        for bad in ["", "2026-13-01", "2023-02-29", "2026-11-21T25:00:00Z", "21/11/2026", "x"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert_eq!(http_date(1_795_219_200), "Sat, 21 Nov 2026 00:00:00 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(rfc3339(1_709_164_800 + 3661), "2024-02-29T01:01:01Z");
        for at in [0, 951_782_400, 1_709_164_800, 4_102_444_800] {
            assert_eq!(parse_date(&rfc3339(at)), Some(at));
        }
    }

    #[tokio::test]
    async fn the_decision_follows_the_clock_and_per_application_dates_override() {
        let t = TestCtx::with_policy(|policy| {
            policy.deprecation.clientlogin =
                Dates { warn_from: Some(1000), refuse_from: Some(2000) };
        })
        .await;
        let ctx = &t.ctx;
        t.clock.set(999);
        assert_eq!(gate(ctx, Protocol::ClientLogin, Some("app")).await.unwrap(), Verdict::Allowed);
        assert_eq!(gate(ctx, Protocol::AuthSub, Some("app")).await.unwrap(), Verdict::Allowed);
        t.clock.set(1000);
        let Verdict::Warned(notice) = gate(ctx, Protocol::ClientLogin, None).await.unwrap() else {
            panic!("not warned")
        };
        assert_eq!((notice.deprecated_from, notice.sunset), (1000, Some(2000)));
        assert_eq!(notice.link, format!("{}/accounts/LegacyMigration", ctx.public_url));
        t.clock.set(2000);
        assert!(matches!(
            gate(ctx, Protocol::ClientLogin, Some("app")).await.unwrap(),
            Verdict::Refused(_)
        ));
        // One application gets more time; a missing date falls back to the protocol's.
        let later = Dates { warn_from: None, refuse_from: Some(3000) };
        set_deprecation(ctx, Protocol::ClientLogin, "app", later, &Actor::Cli).await.unwrap();
        let Verdict::Warned(notice) = gate(ctx, Protocol::ClientLogin, Some("app")).await.unwrap()
        else {
            panic!("not warned")
        };
        assert_eq!((notice.deprecated_from, notice.sunset), (1000, Some(3000)));
        assert!(matches!(
            gate(ctx, Protocol::ClientLogin, Some("other")).await.unwrap(),
            Verdict::Refused(_)
        ));
        let bad = Dates { warn_from: Some(5), refuse_from: Some(4) };
        assert!(
            set_deprecation(ctx, Protocol::ClientLogin, "app", bad, &Actor::Cli).await.is_err()
        );
        assert!(set_deprecation(ctx, Protocol::OAuth2, "app", later, &Actor::Cli).await.is_err());
        // Cleared, the protocol's dates apply again.
        set_deprecation(ctx, Protocol::ClientLogin, "app", Dates::default(), &Actor::Cli)
            .await
            .unwrap();
        assert!(matches!(
            gate(ctx, Protocol::ClientLogin, Some("app")).await.unwrap(),
            Verdict::Refused(_)
        ));
        // Every gated request was counted, per protocol, application and day.
        let usage = usage(ctx).await.unwrap();
        let requests = |protocol: &str, client: &str| {
            usage
                .iter()
                .find(|it| it.protocol == protocol && it.client_id == client)
                .map(|it| it.requests)
        };
        assert_eq!(requests("clientlogin", "app"), Some(4));
        assert_eq!(requests("clientlogin", "other"), Some(1));
        assert_eq!(requests("clientlogin", ""), Some(1));
        assert_eq!(requests("authsub", "app"), Some(1));
    }
}
