//! Every fuzz target of [`TARGETS`] in the normal suite, without a fuzzing build: each replays its
//! kept corpus (`fuzz/corpus/<target>/`, and `fuzz/regressions/<target>/` when there is one), then
//! a seeded mutation smoke — a few thousand inputs per target made from the corpus by bit flips,
//! byte and token inserts, deletions, duplications and splices, the same on every run. A panic
//! fails the test with the input. `cargo xtask fuzz` is the coverage-guided fuzzer.
#![allow(clippy::unwrap_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use tessera_fuzz_targets::{TARGETS, Target};

/// Mutated inputs per target in the smoke.
const MUTATIONS: usize = 8000;
/// Longest mutated input (the fuzzer's `-max_len` is larger; the smoke stays fast).
const MAX_LEN: usize = 4096;
/// The smoke's seed: change it to explore other inputs, keep it fixed in the repository.
const SEED: u64 = 0x7e55_e4a0_f022_0017;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The kept inputs of `target`, by file name.
fn kept(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let dir = fuzz_dir().join(dir).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            out.push((path, data));
        }
    }
    out.sort();
    out
}

/// Runs one input; the panic's text when it panics.
fn survives(run: Target, data: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| run(data))).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|it| (*it).to_owned()))
            .unwrap_or_default()
    })
}

/// SplitMix64: a small seeded generator, so every run makes the same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Bytes and tokens the parsers treat specially: separators, escapes, quotes, numbers at the
/// edges of their types, multi-byte and invalid UTF-8.
const TOKENS: &[&[u8]] = &[
    b"%",
    b"%0",
    b"%ff",
    b"%25",
    b"+",
    b"=",
    b"&",
    b"?",
    b"#",
    b";",
    b",",
    b":",
    b".",
    b"..",
    b"/",
    b"//",
    b"\\",
    b"\"",
    b"'",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\n",
    b"\r\n",
    b"\0",
    b" ",
    b"\t",
    b"-",
    b"--",
    b"-1",
    b"0",
    b"4294967296",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"1e309",
    b"null",
    b"true",
    b"\xc3\xa9",
    b"\xe2\x80\xae",
    b"\xff",
    b"\xf0\x9f",
    b"://",
    b"https://",
    b"http://[::1]",
    b"@",
    b"xn--",
    b"openid.",
    b"oauth_",
    b"data.",
    b"=\"\"",
    b"base64",
    b"-----BEGIN ",
    b"-----END ",
];

fn mutate(rng: &mut Rng, corpus: &[(PathBuf, Vec<u8>)]) -> Vec<u8> {
    let mut data = corpus[rng.below(corpus.len())].1.clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(8) {
            0 if !data.is_empty() => {
                let at = rng.below(data.len());
                data[at] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let at = rng.below(data.len());
                data[at] = rng.next() as u8;
            }
            2 => data.insert(at, rng.next() as u8),
            3 | 4 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, token.iter().copied());
            }
            5 => {
                let end = (at + rng.below(32)).min(data.len());
                data.drain(at..end);
            }
            6 => {
                let end = (at + 1 + rng.below(64)).min(data.len());
                let copy = data[at.min(end)..end].to_vec();
                for _ in 0..=rng.below(8) {
                    data.splice(at..at, copy.iter().copied());
                }
            }
            _ => {
                // Splice: this input's head and another's tail.
                let other = &corpus[rng.below(corpus.len())].1;
                let from = rng.below(other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
    data.truncate(MAX_LEN);
    data
}

#[test]
fn every_kept_corpus_replays_without_a_panic() {
    for (name, run) in TARGETS {
        let corpus = kept(name);
        assert!(!corpus.is_empty(), "{name}: no seeds in fuzz/corpus/{name}/");
        for (path, data) in &corpus {
            if let Err(panic) = survives(*run, data) {
                panic!("{name}: {} panicked: {panic}", path.display());
            }
        }
    }
}

#[test]
fn every_target_survives_a_seeded_mutation_smoke() {
    for (index, (name, run)) in TARGETS.iter().enumerate() {
        let corpus = kept(name);
        assert!(!corpus.is_empty(), "{name}: no seeds in fuzz/corpus/{name}/");
        let mut rng = Rng(SEED ^ index as u64);
        for round in 0..MUTATIONS {
            let data = mutate(&mut rng, &corpus);
            if let Err(panic) = survives(*run, &data) {
                panic!(
                    "{name}: mutation {round} panicked: {panic}\ninput: \"{}\"",
                    data.escape_ascii()
                );
            }
        }
    }
}

/// The `[[bin]]` names of `fuzz/Cargo.toml`, in file order.
fn fuzz_bins(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin
            && let Some(value) = line.strip_prefix("name").map(str::trim_start)
            && let Some(value) = value.strip_prefix('=')
        {
            out.push(value.trim().trim_matches('"').to_owned());
        }
    }
    out
}

/// The fuzzer builds exactly the library's targets, each binary being a call of its function.
#[test]
fn the_fuzz_crate_builds_every_target_of_the_library() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let mut bins = fuzz_bins(&manifest);
    let mut names: Vec<String> = TARGETS.iter().map(|(name, _)| (*name).to_owned()).collect();
    bins.sort();
    names.sort();
    assert_eq!(bins, names, "fuzz/Cargo.toml's [[bin]] names against TARGETS");
    for name in &names {
        let path = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let body = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        assert!(
            body.contains(&format!("tessera_fuzz_targets::{name}(")),
            "{}: the target calls tessera_fuzz_targets::{name}",
            path.display()
        );
    }
    let mut distinct = names.clone();
    distinct.dedup();
    assert_eq!(distinct, names, "a target named twice");
}

#[test]
fn the_mutations_are_the_same_on_every_run() {
    let corpus = vec![(PathBuf::from("a"), b"a=1&b=2".to_vec())];
    let made = |seed| {
        let mut rng = Rng(seed);
        (0..50).map(|_| mutate(&mut rng, &corpus)).collect::<Vec<_>>()
    };
    assert_eq!(made(SEED), made(SEED));
    assert_ne!(made(SEED), made(SEED + 1));
    assert!(made(SEED).iter().any(|it| it != b"a=1&b=2"), "the smoke mutates");
}

/// The DPoP seeds are real proofs, so mutations start past the signature: the first two verify
/// for the requests the target checks them against, the stale one fails on its `iat` only.
#[test]
fn the_dpop_proof_seeds_verify_as_the_target_checks_them() {
    use tessera_domain::oauth2::dpop::{Expected, Refusal, verify_proof};
    const NOW: i64 = 1_700_000_000;
    let seed =
        |name: &str| std::fs::read_to_string(fuzz_dir().join("corpus/dpop_proof").join(name));
    let token = Expected {
        method: "POST",
        url: "https://accounts.example/token",
        access_token: None,
        nonce: false,
    };
    let userinfo = Expected {
        method: "GET",
        url: "https://accounts.example/oauth2/v3/userinfo",
        access_token: Some("ya29.token"),
        nonce: false,
    };
    assert!(verify_proof(&seed("token_es256").unwrap(), &token, NOW).is_ok());
    assert!(verify_proof(&seed("userinfo_eddsa").unwrap(), &userinfo, NOW).is_ok());
    assert_eq!(
        verify_proof(&seed("stale").unwrap(), &token, NOW),
        Err(Refusal::Invalid("The DPoP proof's iat is too far from now."))
    );
    // The overflow regression: signed proofs whose iat is at either end of i64 reach the window
    // check (the signature verifies) and are refused there, without overflowing.
    for name in ["iat_i64_min", "iat_i64_max"] {
        let proof =
            std::fs::read_to_string(fuzz_dir().join("regressions/dpop_proof").join(name)).unwrap();
        assert_eq!(
            verify_proof(&proof, &token, NOW),
            Err(Refusal::Invalid("The DPoP proof's iat is too far from now.")),
            "{name}"
        );
    }
}
