//! The CAPTCHA over HTTP and in the store: the picture and the spoken recording are served while a
//! challenge is live, the text form is gone, the stored row holds no form of the answer, and each
//! challenge takes one guess however many arrive at once.

use std::collections::BTreeSet;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tessera_crypto::captcha::{ALPHABET, MIN_LEN, SAMPLE_RATE};
use tessera_crypto::random::{self, SystemRng};
use tessera_store::CredentialRecord;

use crate::support::{Browser, Page, TestEnv};

/// A live challenge whose answer the test knows. A page's challenge can only be answered by
/// someone who reads its picture or hears its recording; a test stands in for that person by
/// issuing a challenge the way pages do, with an answer it drew itself.
pub async fn known_challenge(env: &TestEnv) -> (String, String) {
    let rng = SystemRng::new();
    let answer = random::from_alphabet(&rng, ALPHABET.as_bytes(), MIN_LEN);
    let challenge = tessera_crypto::captcha::challenge_for(&answer, &rng).unwrap();
    let issued = tessera_domain::captcha::issue_challenge(env.ctx(), &challenge).await.unwrap();
    (issued.token, answer)
}

/// A wrong answer of the right shape.
fn wrong_answer(answer: &str) -> String {
    answer.chars().map(|c| if c == '2' { '3' } else { '2' }).collect()
}

/// Checks a WAV answer: RIFF, PCM, mono, 8 kHz, 8 bits, one canonical header, a few seconds.
fn assert_wav(page: &Page, bytes: &[u8]) {
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["content-type"], "audio/wav");
    assert_eq!(page.headers["cache-control"], "no-store");
    assert_eq!(page.headers["content-disposition"], "inline; filename=\"captcha.wav\"");
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize, bytes.len() - 8);
    assert_eq!(&bytes[8..16], b"WAVEfmt ");
    let u16_at = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap());
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(u32_at(16), 16, "fmt chunk size");
    assert_eq!(u16_at(20), 1, "PCM");
    assert_eq!(u16_at(22), 1, "mono");
    assert_eq!(u32_at(24), SAMPLE_RATE);
    assert_eq!(u16_at(34), 8, "bits per sample");
    assert_eq!(&bytes[36..40], b"data");
    let data_len = u32_at(40) as usize;
    assert_eq!(data_len, bytes.len() - 44);
    let secs = data_len as f64 / f64::from(SAMPLE_RATE);
    assert!((2.5..8.0).contains(&secs), "{secs} s");
    assert!(bytes.len() < 64 * 1024, "{} bytes", bytes.len());
}

/// GETs `path` and returns the response with its body as bytes.
async fn get_bytes(env: &TestEnv, path: &str) -> (Page, Vec<u8>) {
    let res = reqwest::get(env.url(path)).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.bytes().await.unwrap().to_vec();
    (Page { status, headers, body: String::new() }, bytes)
}

#[tokio::test]
async fn recording_is_served_while_the_challenge_is_live() {
    let env = TestEnv::start().await;
    let (token, answer) = known_challenge(&env).await;
    let mut recordings = BTreeSet::new();
    for path in [
        format!("/accounts/Captcha?ctoken={token}&format=audio"),
        format!("/Captcha?ctoken={token}&format=audio"),
        format!("/accounts/Captcha?format=audio&token={token}"),
    ] {
        let (page, bytes) = get_bytes(&env, &path).await;
        assert_wav(&page, &bytes);
        recordings.insert(bytes);
    }
    // Rendered once, when the challenge was issued: fetching it again brings no new noise.
    assert_eq!(recordings.len(), 1);
    let (page, png) = get_bytes(&env, &format!("/accounts/Captcha?ctoken={token}")).await;
    assert_eq!(page.headers["content-type"], "image/png");
    assert!(png.starts_with(b"\x89PNG"));

    // Another challenge with the same answer sounds different.
    let rng = SystemRng::new();
    let again = tessera_crypto::captcha::challenge_for(&answer, &rng).unwrap();
    let other = tessera_domain::captcha::issue_challenge(env.ctx(), &again).await.unwrap().token;
    let (page, bytes) =
        get_bytes(&env, &format!("/accounts/Captcha?ctoken={other}&format=audio")).await;
    assert_wav(&page, &bytes);
    assert!(!recordings.contains(&bytes));

    // Answered (even wrongly), it is gone: picture and recording.
    assert!(
        !tessera_domain::captcha::check(env.ctx(), &token, &wrong_answer(&answer)).await.unwrap()
    );
    for path in [
        format!("/accounts/Captcha?ctoken={token}&format=audio"),
        format!("/accounts/Captcha?ctoken={token}"),
    ] {
        let (page, bytes) = get_bytes(&env, &path).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(!bytes.starts_with(b"RIFF"));
    }
    // Unknown and expired challenges have no recording either.
    for token in ["nope", "", &"x".repeat(200)] {
        let (page, _) =
            get_bytes(&env, &format!("/accounts/Captcha?ctoken={token}&format=audio")).await;
        assert_eq!(page.status, 404, "{token}");
    }
    let ttl = env.ctx().policy.captcha_ttl_secs;
    env.clock.advance(ttl + 1);
    let (page, _) =
        get_bytes(&env, &format!("/accounts/Captcha?ctoken={other}&format=audio")).await;
    assert_eq!(page.status, 404, "expired");
}

#[tokio::test]
async fn text_format_is_gone_and_reveals_nothing() {
    let env = TestEnv::start().await;
    let (token, answer) = known_challenge(&env).await;
    let mut b = env.browser();
    for path in [
        format!("/accounts/Captcha?ctoken={token}&format=text"),
        format!("/Captcha?ctoken={token}&format=text"),
        "/accounts/Captcha?ctoken=nope&format=text".to_owned(),
    ] {
        let page = b.get(&path).await;
        assert_eq!(page.status, 400, "{path}");
        assert!(page.body.contains("no longer given as text"), "{}", page.body);
        assert!(page.body.contains("format=audio"), "{}", page.body);
        assert_no_spelling(&page.body, &answer);
    }
    let page = b.get(&format!("/accounts/Captcha?ctoken={token}&format=mp3")).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("Unknown format"), "{}", page.body);
    // Asking for text did not use the challenge up.
    assert!(tessera_domain::captcha::check(env.ctx(), &token, &answer).await.unwrap());
}

/// The names a person or a script might spell a character with.
fn spellings(c: char) -> &'static [&'static str] {
    match c {
        'k' => &["kilo", "kay"],
        'm' => &["mike", "em"],
        'r' => &["romeo", "ar"],
        'w' => &["whiskey", "double"],
        'y' => &["yankee", "why"],
        '2' => &["two"],
        '3' => &["three"],
        '4' => &["four"],
        '5' => &["five"],
        '6' => &["six"],
        '7' => &["seven"],
        '8' => &["eight"],
        '9' => &["nine"],
        _ => &[],
    }
}

/// `text` holds the answer in no form: not as typed, not in capitals, not spaced or separated,
/// not spelled out letter by letter.
fn assert_no_spelling(text: &str, answer: &str) {
    let lower = text.to_lowercase();
    assert!(!lower.contains(answer), "{answer} in {text}");
    for separator in [" ", ", ", "-", "."] {
        let spaced: Vec<String> = answer.chars().map(String::from).collect();
        assert!(!lower.contains(&spaced.join(separator)), "{answer} spaced in {text}");
    }
    // Whole words only: base64 and JSON keys are full of short letter runs.
    let words: BTreeSet<&str> = lower.split(|c: char| !c.is_ascii_alphabetic()).collect();
    for c in answer.chars() {
        for name in spellings(c).iter().filter(|name| name.len() > 2) {
            assert!(!words.contains(name), "{name} ({c}) in {text}");
        }
    }
    assert!(!lower.contains(" as in "), "{text}");
}

#[tokio::test]
async fn stored_challenge_holds_no_form_of_the_answer() {
    let env = TestEnv::with_config(|c| c.signin.captcha_after_account_failures = 1).await;
    let (token, answer) = known_challenge(&env).await;
    let credentials = env.ctx().store.credentials();
    let digest = tessera_crypto::digest::token_digest(&token);
    let row = credentials.find_live(&digest, env.ctx().now()).await.unwrap().unwrap();
    let mut data: serde_json::Value = serde_json::from_str(&row.data).unwrap();
    let keys: Vec<&str> = data.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["answer", "audio", "png"]);
    // The picture and the recording hold the answer as pixels and sound, nothing else.
    let media = |key: &str| STANDARD.decode(data[key].as_str().unwrap()).unwrap();
    assert!(media("png").starts_with(b"\x89PNG\r\n\x1a\n"));
    let wav = media("audio");
    assert_eq!((&wav[0..4], &wav[8..12]), (&b"RIFF"[..], &b"WAVE"[..]));
    let object = data.as_object_mut().unwrap();
    object.remove("png");
    object.remove("audio");
    // Everything else in the row, the answer's digest included, shows no form of it.
    let rest = format!("{:?} {data}", CredentialRecord { data: String::new(), ..row });
    assert_no_spelling(&rest, &answer);
    assert!(!rest.contains(STANDARD.encode(&answer).trim_end_matches('=')));
    // The digest is keyed: a plain hash of the answer is not it.
    let plain = tessera_crypto::digest::token_digest(&answer);
    assert_ne!(data["answer"], plain.as_str());
    assert_eq!(data["answer"].as_str().unwrap().len(), plain.len());
    assert!(
        tessera_domain::captcha::check(env.ctx(), &token, &answer.to_uppercase()).await.unwrap()
    );

    // A challenge the sign-in page issued is stored the same way, with no spelling beside it.
    env.account("row@example.test", "password-1").await;
    let mut b = env.browser();
    b.sign_in("row@example.test", "wrong").await;
    let page = b.sign_in("row@example.test", "password-1").await;
    let token = page.input("logintoken").expect("a CAPTCHA on the form");
    let digest = tessera_crypto::digest::token_digest(&token);
    let row = credentials.find_live(&digest, env.ctx().now()).await.unwrap().unwrap();
    let data: serde_json::Value = serde_json::from_str(&row.data).unwrap();
    let keys: Vec<&str> = data.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["answer", "audio", "png"]);
    assert!(!row.data.contains("spoken"));
    assert!(!row.data.contains(" as in "));
}

/// Fires 40 answers at one challenge at once, `right` of them correct, and returns how many
/// were accepted.
async fn burst(env: &TestEnv, token: &str, answer: &str, right: usize) -> usize {
    const N: usize = 40;
    assert!(right > 0 && N.is_multiple_of(right));
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let mut tasks = Vec::with_capacity(N);
    for i in 0..N {
        let ctx = env.ctx().clone();
        let barrier = barrier.clone();
        let token = token.to_owned();
        // The right answers are spread through the burst; a single one sits in its middle.
        let guess = match (i + N / 2).is_multiple_of(N / right) {
            true => answer.to_owned(),
            false => wrong_answer(answer),
        };
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            tessera_domain::captcha::check(&ctx, &token, &guess).await.unwrap()
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        accepted += usize::from(task.await.unwrap());
    }
    accepted
}

async fn one_guess_per_challenge(env: &TestEnv) {
    for round in 0..5 {
        // One right answer among 39 wrong ones: accepted at most once, and the challenge is used.
        let (token, answer) = known_challenge(env).await;
        let accepted = burst(env, &token, &answer, 1).await;
        assert!(accepted <= 1, "round {round}: {accepted} accepted");
        let digest = tessera_crypto::digest::token_digest(&token);
        let row = env.ctx().store.credentials().get(&digest).await.unwrap().unwrap();
        assert!(row.consumed_at.is_some(), "round {round}: the challenge was used");
        assert!(!tessera_domain::captcha::check(env.ctx(), &token, &answer).await.unwrap());

        // Forty right answers: exactly one is accepted.
        let (token, answer) = known_challenge(env).await;
        assert_eq!(burst(env, &token, &answer, 40).await, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_parallel_answers_get_one_guess() {
    let env = TestEnv::start().await;
    one_guess_per_challenge(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_parallel_answers_get_one_guess_on_postgres() {
    let Some((url, name)) = crate::cluster::fresh_database().await else { return };
    let env = TestEnv::with_config(|c| c.database_url = url.clone()).await;
    one_guess_per_challenge(&env).await;
    drop(env);
    crate::cluster::drop_database(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_parallel_unlock_posts_use_one_challenge_once() {
    let env = TestEnv::start().await;
    env.account("burst@example.test", "password-1").await;
    let mut b = env.browser();
    assert_eq!(b.sign_in("burst@example.test", "password-1").await.status, 303);
    let mut csrf = Vec::new();
    for _ in 0..40 {
        let page = b.get("/accounts/DisplayUnlockCaptcha").await;
        assert_eq!(page.status, 200, "{}", page.body);
        csrf.push(page.csrf());
    }
    let (token, answer) = known_challenge(&env).await;
    let http = reqwest::Client::new();
    let cookie = b.jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
    let barrier = Arc::new(tokio::sync::Barrier::new(csrf.len()));
    let mut tasks = Vec::new();
    for csrf in csrf {
        let (http, cookie, barrier) = (http.clone(), cookie.clone(), barrier.clone());
        let url = env.url("/accounts/DisplayUnlockCaptcha");
        let fields = [
            ("csrf", csrf),
            ("authuser", "0".to_owned()),
            ("logintoken", token.clone()),
            ("logincaptcha", answer.clone()),
        ];
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let res = http.post(url).header("cookie", cookie).form(&fields).send().await.unwrap();
            assert_eq!(res.status(), 200);
            res.text().await.unwrap()
        }));
    }
    let mut done = 0;
    for task in tasks {
        let body = task.await.unwrap();
        match body.contains("within the next 10 minutes") {
            true => done += 1,
            false => assert!(body.contains("were not the characters"), "{body}"),
        }
    }
    assert_eq!(done, 1, "forty right answers, one challenge, one unlock");
}

#[tokio::test]
async fn pages_offer_the_recording_with_labels_and_a_link() {
    let env = TestEnv::with_config(|c| c.signin.captcha_after_account_failures = 1).await;
    env.account("ear@example.test", "password-1").await;
    let mut b = env.browser();
    b.sign_in("ear@example.test", "wrong").await;
    let page = b.sign_in("ear@example.test", "password-1").await;
    assert_offers_recording(&mut b, &page).await;

    // The unlock page of a signed-in person offers it too.
    let mut b = Browser::new(&env.base);
    let (token, answer) = known_challenge(&env).await;
    let form = b.get("/accounts/ServiceLogin").await;
    let res = b
        .post(
            "/accounts/ServiceLoginAuth",
            &[
                ("csrf", &form.csrf()),
                ("Email", "ear@example.test"),
                ("Passwd", "password-1"),
                ("logintoken", &token),
                ("logincaptcha", &answer),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let page = b.get("/accounts/DisplayUnlockCaptcha").await;
    assert_eq!(page.status, 200);
    assert_offers_recording(&mut b, &page).await;
}

async fn assert_offers_recording(b: &mut Browser, page: &Page) {
    let token = page.input("logintoken").expect("a CAPTCHA on the page");
    let src = format!("/accounts/Captcha?ctoken={token}&amp;format=audio");
    assert!(
        page.body
            .contains(&format!("<audio controls preload=\"none\" src=\"{src}\" aria-label=\""))
    );
    assert!(
        page.body
            .contains(&format!("<a href=\"{src}\" type=\"audio/wav\">Listen to the characters"))
    );
    assert!(!page.body.contains("format=text"));
    assert!(!page.body.contains("<script"), "no JavaScript needed");
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("media-src 'self'"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let audio = b.get(&src.replace("&amp;", "&")).await;
    assert_eq!(audio.status, 200);
    assert_eq!(audio.headers["content-type"], "audio/wav");
}
