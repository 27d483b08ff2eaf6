//! ARCHITECTURE.md's invariants as tests: each reads the workspace's sources as text and fails
//! with `file:line: rule: why` for every place that breaks its rule.
//!
//! Sources are read as tokens (identifiers, literals, punctuation), with comments dropped, so a
//! rule written as `hasher.verify` matches however the code is laid out and never matches inside
//! a comment or (unless the rule looks at literals) inside a string. Test code is left out
//! everywhere: `tests/` and `benches/` folders, `tests.rs` and `*_tests.rs` files, and items under
//! `#[cfg(test)]`. Markdown and other documentation are not read.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// The rules
// ---------------------------------------------------------------------------------------------

/// SQL statement shapes, in capitals as the store writes them, live only in `crates/store-sql`.
/// Literals are read one at a time: a statement assembled from pieces is seen only where a piece
/// carries a whole shape.
#[test]
fn sql_text_only_in_store_sql() {
    let mut found = Vec::new();
    for file in workspace_sources() {
        if file.path.starts_with("crates/store-sql/") {
            continue;
        }
        if file.path.ends_with(".sql") {
            found.push(format!(
                "{}: sql: SQL files belong in crates/store-sql/migrations",
                file.path
            ));
            continue;
        }
        for token in file.scanned().tokens {
            if let Token::Str(text) = &token.kind
                && let Some(shape) = sql_shape(text)
            {
                found.push(violation(
                    &file.path,
                    token.line,
                    "sql",
                    &format!("`{shape}` in a string: SQL text exists only in crates/store-sql"),
                ));
            }
        }
    }
    assert_clean("sql_text_only_in_store_sql", &found);
}

/// The crates that would bring HTTP types in (the HTTP-free crates are [`http_free_crates`]).
const HTTP_CRATES: &[&str] = &[
    "axum",
    "axum-core",
    "axum-extra",
    "http",
    "http-body",
    "http-body-util",
    "hyper",
    "hyper-util",
    "tower",
    "tower-http",
    "tower-layer",
    "tower-service",
];

/// `crates/domain` and `crates/proto-*` neither depend on nor name an HTTP crate. Their
/// `[dev-dependencies]` are not read: tests may speak HTTP.
#[test]
fn no_http_types_in_domain_or_protocol_crates() {
    let mut found = Vec::new();
    let root = workspace_root();
    let http_free = http_free_crates(&root);
    for krate in &http_free {
        let manifest_path = format!("{krate}Cargo.toml");
        let text = std::fs::read_to_string(root.join(&manifest_path)).unwrap();
        let manifest: toml::Table = toml::from_str(&text).unwrap();
        for name in normal_dependencies(&manifest) {
            if HTTP_CRATES.contains(&name.as_str()) {
                let line = line_of(&text, &name);
                found.push(violation(
                    &manifest_path,
                    line,
                    "no-http",
                    &format!("depends on `{name}`; HTTP types stay in crates/web"),
                ));
            }
        }
    }
    let patterns: Vec<String> = HTTP_CRATES
        .iter()
        .flat_map(|name| {
            let path = name.replace('-', "_");
            [format!("{path}::"), format!("use {path};"), format!("extern crate {path}")]
        })
        .collect();
    for file in workspace_sources() {
        if http_free.iter().any(|it| file.path.starts_with(it.as_str()))
            && file.path.ends_with(".rs")
        {
            let scanned = file.scanned();
            for pattern in &patterns {
                for line in scanned.find(pattern) {
                    found.push(violation(
                        &file.path,
                        line,
                        "no-http",
                        &format!("names `{pattern}`; HTTP types stay in crates/web"),
                    ));
                }
            }
        }
    }
    assert_clean("no_http_types_in_domain_or_protocol_crates", &found);
}

/// What reads the wall clock or draws from the operating system's RNG.
const CLOCK_AND_OS_RNG: &[&str] = &[
    "SystemTime::now",
    "Instant::now",
    "OffsetDateTime::now",
    "OffsetDateTime::now_utc",
    "OffsetDateTime::now_local",
    "Utc::now",
    "Local::now",
    "thread_rng",
    "OsRng",
    "SystemRandom",
    "SystemRng",
    "getrandom",
    "rand::random",
];

/// The domain (and the protocol crates) take time and randomness from `Ctx`, so tests fix them.
#[test]
fn domain_reads_no_clock_and_no_os_rng() {
    let mut found = Vec::new();
    for file in rust_sources(&["crates/domain/", "crates/proto-"]) {
        let scanned = file.scanned();
        for text in CLOCK_AND_OS_RNG {
            for line in scanned.find(text) {
                found.push(violation(
                    &file.path,
                    line,
                    "no-clock",
                    &format!(
                        "`{text}`: time and randomness come from `Ctx` (`ctx.now()`, `ctx.rng`)"
                    ),
                ));
            }
        }
    }
    assert_clean("domain_reads_no_clock_and_no_os_rng", &found);
}

/// Where printing is the job: the command line, the build tasks and the benchmark binaries.
const PRINTING_ALLOWED: &[&str] =
    &["crates/tessera/src/cli/", "xtask/", "bench/", "libs/tessera-client/examples/verify_rate.rs"];
const PRINTING: &[&str] =
    &["println!", "eprintln!", "print!", "eprint!", "dbg!", "io::stdout()", "io::stderr()"];

/// Servers log through `tracing`; only the command line prints. Clippy's `print_stdout` and
/// `print_stderr` say the same at build time; this test also covers `std::io::stdout()`.
#[test]
fn printing_only_where_it_is_the_job() {
    let mut found = Vec::new();
    for file in rust_sources(&["crates/", "libs/", "xtask/", "bench/"]) {
        if PRINTING_ALLOWED.iter().any(|it| file.path.starts_with(it)) {
            continue;
        }
        let scanned = file.scanned();
        for text in PRINTING {
            for line in scanned.find(text) {
                found.push(violation(
                    &file.path,
                    line,
                    "no-print",
                    &format!("`{text}`: only crates/tessera/src/cli/ prints; log with `tracing`"),
                ));
            }
        }
    }
    assert_clean("printing_only_where_it_is_the_job", &found);
}

/// One shared flow that must exist in one place: code matching any pattern outside the allowed
/// files breaks it. Entries are data so that they are easy to adjust as the code moves.
struct FlowRule {
    /// A short name for the message.
    flow: &'static str,
    patterns: &'static [Pattern],
    /// Path prefixes where the flow lives (and its primitives).
    allowed: &'static [&'static str],
    /// String literals containing one of these are ignored by this rule (e.g. challenges).
    ignore_literals_with: &'static [&'static str],
    message: &'static str,
}

/// The server's crates; the published client library speaks only over the wire and has its own.
const SERVER_CRATES: &[&str] = &["crates/"];

const SHARED_FLOWS: &[FlowRule] = &[
    FlowRule {
        flow: "password",
        patterns: &[
            Pattern::Tokens("hasher.verify"),
            Pattern::Tokens("hasher.verify_dummy"),
            Pattern::Tokens("PasswordHasher::verify"),
            Pattern::Tokens("PasswordVerifier"),
            Pattern::Tokens("verify_password"),
            Pattern::Tokens("password::verify"),
            Pattern::Tokens("dummy_verify"),
            Pattern::Tokens("check_password"),
            Pattern::Tokens("app_passwords::verify"),
            Pattern::Tokens("app_passwords::verify_dummy"),
        ],
        allowed: &["crates/domain/src/password.rs", "crates/crypto/src/password.rs"],
        ignore_literals_with: &[],
        message: "a password hash or app password is verified only by crates/domain/src/password.rs",
    },
    FlowRule {
        flow: "authorization-header",
        patterns: &[
            // Scheme prefixes as a parser strips or matches them.
            Pattern::StrIs("Bearer "),
            Pattern::StrIs("Basic "),
            Pattern::StrIs("AuthSub "),
            Pattern::StrIs("GoogleLogin"),
            Pattern::StrIs("GoogleLogin "),
            Pattern::StrIs("bearer "),
            Pattern::StrIs("basic "),
            Pattern::StrIs("authsub "),
            Pattern::StrIs("googlelogin "),
            Pattern::StrStarts("AuthSub token="),
            Pattern::StrStarts("GoogleLogin auth="),
            // Scheme names compared the way RFC 7235 asks (case-insensitively) once split off.
            Pattern::Tokens(r#"eq_ignore_ascii_case("bearer")"#),
            Pattern::Tokens(r#"eq_ignore_ascii_case("basic")"#),
            Pattern::Tokens(r#"eq_ignore_ascii_case("oauth")"#),
            Pattern::Tokens(r#"eq_ignore_ascii_case("authsub")"#),
            Pattern::Tokens(r#"eq_ignore_ascii_case("googlelogin")"#),
            // Reading the header: only the web extractor, which hands the value to the parser.
            Pattern::Tokens("header::AUTHORIZATION"),
            Pattern::Tokens(r#"get("authorization")"#),
            Pattern::Tokens(r#"get("Authorization")"#),
        ],
        allowed: &["crates/domain/src/caller.rs", "crates/web/src/caller.rs"],
        ignore_literals_with: &["realm=", "error="],
        message: "the Authorization header is read by the web `Caller` extractor (crates/web/src/caller.rs) and parsed only by `parse_authorization` in crates/domain/src/caller.rs",
    },
    FlowRule {
        flow: "consent-page",
        patterns: &[
            Pattern::Tokens("ConsentPage {"),
            Pattern::Tokens("ConsentPage::"),
            Pattern::Tokens("AccessPage {"),
            Pattern::StrIs("consent.html"),
            Pattern::StrIs("authsub_access.html"),
        ],
        allowed: &["crates/web/src/pages/consent.rs"],
        ignore_literals_with: &[],
        message: "the consent page is built only by crates/web/src/pages/consent.rs",
    },
    FlowRule {
        flow: "claims",
        patterns: &[
            Pattern::Tokens(r#"insert("name""#),
            Pattern::Tokens(r#"insert("given_name""#),
            Pattern::Tokens(r#"insert("family_name""#),
            Pattern::Tokens(r#"insert("picture""#),
            Pattern::Tokens(r#"insert("locale""#),
            Pattern::Tokens(r#"insert("hd""#),
            Pattern::Tokens(r#""hd":"#),
            Pattern::StrIs("email_verified"),
            Pattern::StrIs("verified_email"),
        ],
        allowed: &[
            "crates/domain/src/claims.rs",
            // Lists the claim names in discovery; decides nothing.
            "crates/web/src/oauth2/metadata.rs",
            // Prints the claims of a token it verified as a client; decides nothing.
            "crates/tessera/src/cli/token.rs",
        ],
        ignore_literals_with: &[],
        message: "which claims an account releases to a client (email_verified, hd, name) is decided only by crates/domain/src/claims.rs",
    },
];

/// Each shared flow is written once; see [`SHARED_FLOWS`].
#[test]
fn each_shared_flow_exists_once() {
    let found = check_flows(SHARED_FLOWS, &rust_sources(SERVER_CRATES));
    assert_clean("each_shared_flow_exists_once", &found);
}

/// `oauth2/jwt.rs` is the only code that verifies a JWS, ours or a client's.
const ONE_JWS_VERIFIER: &[FlowRule] = &[FlowRule {
    flow: "jws",
    patterns: &[Pattern::Tokens("keys::verify"), Pattern::Tokens("signature::UnparsedPublicKey")],
    allowed: &[
        "crates/domain/src/oauth2/jwt.rs",
        // The primitive itself, and its own self-check of certificates it writes.
        "crates/crypto/src/keys.rs",
        "crates/crypto/src/x509.rs",
        // AuthSub secure tokens are RSA-SHA1 over a request, not a JWS.
        "crates/crypto/src/authsub.rs",
    ],
    ignore_literals_with: &[],
    message: "JWS signatures are verified only by crates/domain/src/oauth2/jwt.rs",
}];

#[test]
fn one_jws_verifier() {
    let found = check_flows(ONE_JWS_VERIFIER, &rust_sources(SERVER_CRATES));
    assert_clean("one_jws_verifier", &found);
}

/// What the playground may reach in the domain: the developer's session, their projects, the
/// playground's OAuth 2.0 clients in them and a push API key for one of them (as the developer
/// console does, through the same functions), and plain types. Every
/// protocol step goes over the wire to the public endpoints.
const PLAYGROUND_DOMAIN_PATHS: &[&str] = &[
    "sessions",
    "projects",
    "oauth2::clients",
    "push::create_api_key_by",
    "audit::Actor",
    "credentials::Protocol",
    "Clock",
    "Error",
];

/// The web modules the playground must not call into: the protocol handlers themselves.
const PLAYGROUND_FORBIDDEN_WEB: &[&str] =
    &["oauth2", "legacy", "push", "push_delivery", "caller", "pages::consent", "pages::sso"];

/// The path after `root ::` starting at token `start`, as `a::b::c`.
fn path_after(tokens: &[Spanned], start: usize) -> String {
    let mut parts = Vec::new();
    let mut i = start;
    while let Some(Token::Word(word)) = tokens.get(i).map(|it| &it.kind) {
        parts.push(word.clone());
        let colons = tokens.get(i + 1).map(|it| &it.kind) == Some(&Token::Punct(':'))
            && tokens.get(i + 2).map(|it| &it.kind) == Some(&Token::Punct(':'));
        if !colons {
            break;
        }
        i += 3;
    }
    parts.join("::")
}

/// The playground (`crates/web/src/playground/`) is a client like any other: it reaches the
/// domain only for what the developer console does ([`PLAYGROUND_DOMAIN_PATHS`]), never the
/// store, and never calls the protocol handlers; its steps are HTTP requests to the public URL.
#[test]
fn playground_has_no_back_door() {
    let mut found = Vec::new();
    let files = rust_sources(&["crates/web/src/playground"]);
    assert!(!files.is_empty(), "the playground's sources are where this rule looks");
    for file in files {
        let tokens = file.scanned().tokens;
        for (i, token) in tokens.iter().enumerate() {
            let Token::Word(word) = &token.kind else { continue };
            let after_colons = tokens.get(i + 1).map(|it| &it.kind) == Some(&Token::Punct(':'))
                && tokens.get(i + 2).map(|it| &it.kind) == Some(&Token::Punct(':'));
            let path = if after_colons { path_after(&tokens, i + 3) } else { String::new() };
            let allowed = |list: &[&str]| {
                list.iter().any(|it| path == *it || path.starts_with(&format!("{it}::")))
            };
            let why = match word.as_str() {
                "tessera_domain" | "tessera_store" if after_colons => {
                    let ok = word == "tessera_domain" && allowed(PLAYGROUND_DOMAIN_PATHS)
                        || word == "tessera_store" && path == "ProjectRecord";
                    (!ok).then(|| format!("`{word}::{path}`: the playground reaches the domain only as the console does"))
                }
                "crate" if after_colons && allowed(PLAYGROUND_FORBIDDEN_WEB) => Some(format!(
                    "`crate::{path}`: the playground calls protocol handlers over HTTP, not in process"
                )),
                "store" if i > 0 && tokens[i - 1].kind == Token::Punct('.') => {
                    Some("`.store`: the playground never touches the store".to_owned())
                }
                _ => None,
            };
            if let Some(why) = why {
                found.push(violation(&file.path, token.line, "playground", &why));
            }
        }
    }
    assert_clean("playground_has_no_back_door", &found);
}

// ---------------------------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------------------------

/// What a rule looks for.
#[derive(Debug, Clone, Copy)]
enum Pattern {
    /// A run of tokens, written as code (`hasher.verify`, `insert("hd"`); literals in it match
    /// literals of the same text. Layout and comments do not matter.
    Tokens(&'static str),
    /// A string literal whose text is exactly this.
    StrIs(&'static str),
    /// A string literal whose text starts with this.
    StrStarts(&'static str),
}

impl Pattern {
    fn text(&self) -> &'static str {
        match self {
            Pattern::Tokens(it) | Pattern::StrIs(it) | Pattern::StrStarts(it) => it,
        }
    }
}

fn check_flows(rules: &[FlowRule], files: &[SourceFile]) -> Vec<String> {
    let mut found = Vec::new();
    for file in files {
        let scanned = file.scanned();
        for rule in rules {
            if rule.allowed.iter().any(|it| file.path.starts_with(it)) {
                continue;
            }
            for pattern in rule.patterns {
                let lines = match pattern {
                    Pattern::Tokens(text) => scanned.find(text),
                    Pattern::StrIs(_) | Pattern::StrStarts(_) => scanned
                        .tokens
                        .iter()
                        .filter(|token| match &token.kind {
                            Token::Str(text) => {
                                !rule.ignore_literals_with.iter().any(|it| text.contains(it))
                                    && match pattern {
                                        Pattern::StrIs(want) => text == want,
                                        _ => text.starts_with(pattern.text()),
                                    }
                            }
                            _ => false,
                        })
                        .map(|token| token.line)
                        .collect(),
                };
                for line in lines {
                    found.push(violation(
                        &file.path,
                        line,
                        rule.flow,
                        &format!("`{}`: {}", pattern.text(), rule.message),
                    ));
                }
            }
        }
    }
    found
}

/// The SQL statement shape in a literal, if it holds one.
fn sql_shape(text: &str) -> Option<&'static str> {
    let words: Vec<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|it| !it.is_empty())
        .collect();
    let at = |word: &str| words.iter().position(|it| *it == word);
    let next_is = |word: &str, then: &str, gap: usize| {
        words.windows(gap + 2).any(|w| w[0] == word && w[gap + 1] == then)
    };
    if let Some(select) = at("SELECT")
        && words[select..].contains(&"FROM")
    {
        return Some("SELECT … FROM");
    }
    if next_is("INSERT", "INTO", 0) {
        return Some("INSERT INTO");
    }
    if next_is("UPDATE", "SET", 1) {
        return Some("UPDATE … SET");
    }
    if next_is("DELETE", "FROM", 0) {
        return Some("DELETE FROM");
    }
    None
}

fn violation(path: &str, line: usize, rule: &str, why: &str) -> String {
    format!("{path}:{line}: {rule}: {why}")
}

fn assert_clean(test: &str, found: &[String]) {
    if !found.is_empty() {
        let mut text = format!("{test}: {} place(s) break ARCHITECTURE.md:\n", found.len());
        for it in found {
            let _ = writeln!(text, "  {it}");
        }
        panic!("{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// The workspace's files
// ---------------------------------------------------------------------------------------------

struct SourceFile {
    /// Relative to the workspace root, with `/`.
    path: String,
    text: String,
}

impl SourceFile {
    fn scanned(&self) -> Scanned {
        scan(&self.text)
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Every `.rs` and `.sql` file of the workspace that is not test code.
fn workspace_sources() -> Vec<SourceFile> {
    let root = workspace_root();
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The Rust files under these path prefixes.
fn rust_sources(prefixes: &[&str]) -> Vec<SourceFile> {
    workspace_sources()
        .into_iter()
        .filter(|it| it.path.ends_with(".rs") && prefixes.iter().any(|p| it.path.starts_with(p)))
        .collect()
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<SourceFile>) {
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).unwrap().map(|it| it.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|it| it.to_str()).unwrap_or_default().to_owned();
        if path.is_dir() {
            let skip = name.starts_with('.')
                || matches!(name.as_str(), "target" | "node_modules" | "tests" | "benches");
            if !skip {
                walk(root, &path, out);
            }
            continue;
        }
        let is_test = name == "tests.rs" || name.ends_with("_tests.rs");
        if !(name.ends_with(".rs") || name.ends_with(".sql")) || is_test {
            continue;
        }
        let relative = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
        out.push(SourceFile { path: relative, text: std::fs::read_to_string(&path).unwrap() });
    }
}

/// `crates/domain/` and every `crates/proto-*/`, with a trailing `/`.
fn http_free_crates(root: &Path) -> Vec<String> {
    let mut out = vec!["crates/domain/".to_owned()];
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("proto-") {
            out.push(format!("crates/{name}/"));
        }
    }
    out.sort();
    out
}

/// The names of the crates a manifest depends on outside tests (renamed ones by their package).
fn normal_dependencies(manifest: &toml::Table) -> Vec<String> {
    let mut tables: Vec<&toml::Table> = Vec::new();
    for key in ["dependencies", "build-dependencies"] {
        if let Some(table) = manifest.get(key).and_then(toml::Value::as_table) {
            tables.push(table);
        }
    }
    if let Some(targets) = manifest.get("target").and_then(toml::Value::as_table) {
        for target in targets.values().filter_map(toml::Value::as_table) {
            for key in ["dependencies", "build-dependencies"] {
                if let Some(table) = target.get(key).and_then(toml::Value::as_table) {
                    tables.push(table);
                }
            }
        }
    }
    let mut names = Vec::new();
    for table in tables {
        for (name, spec) in table {
            let package = spec.get("package").and_then(toml::Value::as_str).unwrap_or(name);
            names.push(package.to_owned());
        }
    }
    names
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|line| line.trim_start().starts_with(needle)).map_or(0, |it| it + 1)
}

// ---------------------------------------------------------------------------------------------
// The scanner: Rust source to tokens, comments and test items left out
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An identifier, keyword or number.
    Word(String),
    /// The text of a string literal (between its quotes, escapes as written).
    Str(String),
    /// A character literal or a lifetime, as written.
    Char(String),
    /// One punctuation character.
    Punct(char),
}

#[derive(Debug, Clone)]
struct Spanned {
    kind: Token,
    line: usize,
}

struct Scanned {
    tokens: Vec<Spanned>,
}

impl Scanned {
    /// The lines where the code `pattern` occurs, as tokens (see [`Pattern::Tokens`]).
    fn find(&self, pattern: &str) -> Vec<usize> {
        let wanted: Vec<Token> = tokenize(pattern).into_iter().map(|it| it.kind).collect();
        if wanted.is_empty() || self.tokens.len() < wanted.len() {
            return Vec::new();
        }
        let mut lines = Vec::new();
        for start in 0..=self.tokens.len() - wanted.len() {
            let window = &self.tokens[start..start + wanted.len()];
            if window.iter().zip(&wanted).all(|(have, want)| have.kind == *want) {
                lines.push(window[0].line);
            }
        }
        lines
    }
}

/// Tokens of `source` without comments and without the items under `#[cfg(test)]`.
fn scan(source: &str) -> Scanned {
    Scanned { tokens: drop_test_items(tokenize(source)) }
}

fn tokenize(source: &str) -> Vec<Spanned> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
            }
        } else if let Some((text, end)) = string_literal(&chars, i) {
            let start_line = line;
            line += chars[i..end].iter().filter(|it| **it == '\n').count();
            tokens.push(Spanned { kind: Token::Str(text), line: start_line });
            i = end;
        } else if c == '\'' {
            // A character literal ('a', '\n', '\u{1F600}') or a lifetime ('a, 'static).
            let end = if next == Some('\\') {
                let mut j = i + 2;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                j + 1
            } else if chars.get(i + 2) == Some(&'\'') {
                i + 3
            } else {
                let mut j = i + 1;
                while j < chars.len() && ident(chars[j]) {
                    j += 1;
                }
                j
            };
            let end = end.min(chars.len());
            tokens.push(Spanned { kind: Token::Char(chars[i..end].iter().collect()), line });
            i = end;
        } else if ident(c) {
            let start = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            tokens.push(Spanned { kind: Token::Word(chars[start..i].iter().collect()), line });
        } else {
            tokens.push(Spanned { kind: Token::Punct(c), line });
            i += 1;
        }
    }
    tokens
}

/// A string literal starting at `i` (`"…"`, `b"…"`, `c"…"`, `r"…"`, `r#"…"#`, `br#"…"#`): its
/// text and the index after it.
fn string_literal(chars: &[char], i: usize) -> Option<(String, usize)> {
    // Not the tail of an identifier such as `bar"`.
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return None;
    }
    let mut j = i;
    if matches!(chars.get(j), Some('b' | 'c')) {
        j += 1;
    }
    let raw = chars.get(j) == Some(&'r');
    if raw {
        j += 1;
        let mut hashes = 0;
        while chars.get(j) == Some(&'#') {
            hashes += 1;
            j += 1;
        }
        if chars.get(j) != Some(&'"') {
            return None;
        }
        let start = j + 1;
        let mut k = start;
        while k < chars.len() {
            if chars[k] == '"' && (0..hashes).all(|h| chars.get(k + 1 + h) == Some(&'#')) {
                return Some((chars[start..k].iter().collect(), k + 1 + hashes));
            }
            k += 1;
        }
        return Some((chars[start..].iter().collect(), chars.len()));
    }
    if chars.get(j) != Some(&'"') {
        return None;
    }
    let start = j + 1;
    let mut k = start;
    while k < chars.len() {
        match chars[k] {
            '\\' => k += 2,
            '"' => return Some((chars[start..k].iter().collect(), k + 1)),
            _ => k += 1,
        }
    }
    Some((chars[start.min(chars.len())..].iter().collect(), chars.len()))
}

/// Leaves out each item under `#[cfg(test)]`: up to its `;`, or its whole `{ … }` body.
fn drop_test_items(tokens: Vec<Spanned>) -> Vec<Spanned> {
    let marker: Vec<Token> = tokenize("#[cfg(test)]").into_iter().map(|it| it.kind).collect();
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let is_marker = tokens.len() - i >= marker.len()
            && tokens[i..i + marker.len()].iter().zip(&marker).all(|(a, b)| a.kind == *b);
        if !is_marker {
            out.push(tokens[i].clone());
            i += 1;
            continue;
        }
        let mut j = i + marker.len();
        let mut nesting = 0i32;
        while j < tokens.len() {
            match tokens[j].kind {
                Token::Punct('(' | '[') => nesting += 1,
                Token::Punct(')' | ']') => nesting -= 1,
                Token::Punct(';') if nesting == 0 => break,
                Token::Punct('{') if nesting == 0 => {
                    let mut depth = 0;
                    while j < tokens.len() {
                        match tokens[j].kind {
                            Token::Punct('{') => depth += 1,
                            Token::Punct('}') => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        j += 1;
                    }
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        i = j + 1;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The scanner's own tests
// ---------------------------------------------------------------------------------------------

fn fixture(path: &str, text: &str) -> SourceFile {
    SourceFile { path: path.to_owned(), text: text.to_owned() }
}

#[test]
fn scanner_finds_code_whatever_its_layout() {
    let file = fixture(
        "crates/web/src/x.rs",
        "fn f(h: &H) {\n    let ok = h\n        .hasher\n        .verify(a, b);\n}\n",
    );
    let found = check_flows(SHARED_FLOWS, &[file]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("crates/web/src/x.rs:3: password: `hasher.verify`"), "{found:?}");
}

#[test]
fn scanner_ignores_comments_strings_and_test_items() {
    let text = r##"
// hasher.verify(a, b) in a line comment
/* a block /* nested */ comment: check_password(x) */
/// A doc comment naming app_passwords::verify.
fn f() -> &'static str {
    let _c = '"';
    let _s = "hasher.verify(a, b) in a string";
    let _r = r#"check_password("x") in a raw string"#;
    'outer: loop { break 'outer; }
    "done"
}
#[cfg(test)]
mod tests {
    fn t() { assert!(check_password(x)); let _ = '}'; }
}
#[cfg(test)]
fn also_test() { hasher.verify(a, b); }
"##;
    let found = check_flows(SHARED_FLOWS, &[fixture("crates/web/src/x.rs", text)]);
    assert!(found.is_empty(), "{found:?}");
    // The same call outside those places is found, on its line.
    let text = format!("{text}fn g() {{ check_password(x) }}\n");
    let found = check_flows(SHARED_FLOWS, &[fixture("crates/web/src/x.rs", &text)]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("crates/web/src/x.rs:18: password:"), "{found:?}");
}

#[test]
fn scanner_allows_the_flows_own_file() {
    let text = "pub async fn check(h: &H) -> bool { h.hasher.verify(a, b).is_valid() }\n";
    assert!(
        check_flows(SHARED_FLOWS, &[fixture("crates/domain/src/password.rs", text)]).is_empty()
    );
    assert_eq!(check_flows(SHARED_FLOWS, &[fixture("crates/domain/src/signin.rs", text)]).len(), 1);
}

#[test]
fn scanner_reads_literals_for_literal_rules() {
    let parser = "fn p(v: &str) { if let Some(t) = v.strip_prefix(\"Bearer \") {} }\n";
    let found = check_flows(SHARED_FLOWS, &[fixture("crates/web/src/oauth2/mod.rs", parser)]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("authorization-header"), "{found:?}");
    // A challenge is not a parser, and the token type is not a scheme comparison.
    let challenge =
        "const C: &str = \"Bearer realm=\\\"userinfo\\\"\"; fn t() -> &str { \"Bearer\" }\n";
    assert!(check_flows(SHARED_FLOWS, &[fixture("crates/web/src/x.rs", challenge)]).is_empty());
    assert_eq!(sql_shape("SELECT id, kid FROM keys WHERE kid = $1"), Some("SELECT … FROM"));
    assert_eq!(sql_shape("UPDATE credentials SET consumed_at = $1"), Some("UPDATE … SET"));
    assert_eq!(sql_shape("INSERT INTO t (a) VALUES (1)"), Some("INSERT INTO"));
    assert_eq!(sql_shape("DELETE FROM t"), Some("DELETE FROM"));
    assert_eq!(sql_shape("Select an account from the list"), None);
    assert_eq!(sql_shape("UPDATE the page, then SET it"), None);
}

#[test]
fn the_scan_covers_the_workspace() {
    let files = workspace_sources();
    let paths: Vec<&str> = files.iter().map(|it| it.path.as_str()).collect();
    for expected in [
        "crates/domain/src/lib.rs",
        "crates/web/src/lib.rs",
        "crates/store-sql/src/lib.rs",
        "xtask/src/main.rs",
    ] {
        assert!(paths.contains(&expected), "{expected} is read");
    }
    assert!(paths.iter().all(|it| !it.contains("/tests/") && !it.starts_with("target/")));
    assert!(http_free_crates(&workspace_root()).contains(&"crates/proto-oauth2/".to_owned()));
    // The checks have something to look at: the store's SQL is seen (and allowed there).
    let store = files.iter().find(|it| it.path == "crates/store-sql/src/sessions.rs").unwrap();
    let tokens = store.scanned().tokens;
    assert!(
        tokens.iter().any(|it| matches!(&it.kind, Token::Str(text) if sql_shape(text).is_some()))
    );
}
