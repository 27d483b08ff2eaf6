//! Password hashing with Argon2id, PHC strings, rehash detection and a dummy verification
//! that equalises timing for unknown accounts.

use std::sync::{Mutex, OnceLock, PoisonError};

use argon2::PasswordHasher as _;
use argon2::{Algorithm, Argon2, Params, PasswordHash, Version};

use crate::CryptoError;
use crate::random::Rng;

/// The length of generated salts in bytes.
const SALT_LEN: usize = 16;

/// The length of the hash output in bytes.
const OUTPUT_LEN: usize = 32;

/// The largest memory cost, in KiB, that a stored hash may ask for (1 GiB), unless the
/// configured parameters are higher. This keeps a corrupted or hostile PHC string from
/// exhausting memory or CPU.
const MAX_M_COST_KIB: u32 = 1 << 20;

/// The largest number of passes a stored hash may ask for, unless configured higher.
const MAX_T_COST: u32 = 64;

/// The largest parallelism a stored hash may ask for, unless configured higher.
const MAX_P_COST: u32 = 16;

/// The password hashed for [`PasswordHasher::verify_dummy`]; it is public and never valid.
const DUMMY_PASSWORD: &[u8] = b"tessera dummy password for timing equalisation";

/// The salt of the dummy hash.
const DUMMY_SALT: &[u8] = b"tessera-dummy-salt";

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PasswordParams {
    /// Memory cost in KiB.
    pub m_cost_kib: u32,
    /// Number of passes.
    pub t_cost: u32,
    /// Degree of parallelism.
    pub p_cost: u32,
}

impl PasswordParams {
    /// The OWASP recommendation for Argon2id: 19 MiB, 2 passes, 1 lane.
    pub const OWASP: Self = Self { m_cost_kib: 19_456, t_cost: 2, p_cost: 1 };

    fn to_argon2(self) -> Result<Params, CryptoError> {
        Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(OUTPUT_LEN))
            .map_err(|_| CryptoError::InvalidParams)
    }
}

impl Default for PasswordParams {
    fn default() -> Self {
        Self::OWASP
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password does not match, or the stored hash is malformed or unacceptable.
    Invalid,
    /// The password matches and the hash uses the current parameters.
    Valid,
    /// The password matches but the hash uses other parameters, another Argon2 variant or
    /// version; the caller should store a fresh hash of the password.
    ValidNeedsRehash,
}

impl Verification {
    /// Returns whether the password matched, whether or not a rehash is due.
    #[must_use]
    pub fn is_valid(self) -> bool {
        !matches!(self, Verification::Invalid)
    }
}

/// Hashes and verifies passwords with fixed Argon2id parameters.
///
/// Build one at start-up and share it; the dummy hash for [`PasswordHasher::verify_dummy`] is
/// computed on first use and cached.
pub struct PasswordHasher {
    params: PasswordParams,
    argon2_params: Params,
    dummy: OnceLock<String>,
}

impl PasswordHasher {
    /// Creates a hasher with `params`.
    ///
    /// # Errors
    ///
    /// Returns [`CryptoError::InvalidParams`] if Argon2 refuses the parameters (for example a
    /// memory cost below 8 KiB per lane or zero passes).
    pub fn new(params: PasswordParams) -> Result<Self, CryptoError> {
        let argon2_params = params.to_argon2()?;
        Ok(Self { params, argon2_params, dummy: OnceLock::new() })
    }

    /// Returns the parameters new hashes are made with.
    #[must_use]
    pub fn params(&self) -> PasswordParams {
        self.params
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.argon2_params.clone())
    }

    /// Hashes `password` with a fresh 16-byte salt and returns the PHC string
    /// (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    ///
    /// # Errors
    ///
    /// Returns [`CryptoError::PasswordHash`] if Argon2 fails, which only happens for
    /// passwords longer than 4 GiB.
    pub fn hash(&self, rng: &dyn Rng, password: &str) -> Result<String, CryptoError> {
        let mut salt = [0u8; SALT_LEN];
        rng.fill(&mut salt);
        self.hash_with_salt(password.as_bytes(), &salt)
    }

    fn hash_with_salt(&self, password: &[u8], salt: &[u8]) -> Result<String, CryptoError> {
        self.argon2()
            .hash_password_with_salt(password, salt)
            .map(|hash| hash.to_string())
            .map_err(|_| CryptoError::PasswordHash)
    }

    /// Checks `password` against the stored PHC string `phc`.
    ///
    /// The stored hash's own algorithm, version and parameters are used, so hashes made with
    /// older settings still verify and are reported as [`Verification::ValidNeedsRehash`].
    /// Malformed strings, and strings asking for more than 1 GiB, 64 passes or 16 lanes
    /// (or the configured values, if higher), are [`Verification::Invalid`]. Never panics.
    #[must_use]
    pub fn verify(&self, phc: &str, password: &str) -> Verification {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return Verification::Invalid;
        };
        let Ok(stored) = Params::try_from(&parsed) else {
            return Verification::Invalid;
        };
        if stored.m_cost() > MAX_M_COST_KIB.max(self.params.m_cost_kib)
            || stored.t_cost() > MAX_T_COST.max(self.params.t_cost)
            || stored.p_cost() > MAX_P_COST.max(self.params.p_cost)
        {
            return Verification::Invalid;
        }
        if !recompute_matches(&parsed, &stored, password.as_bytes()) {
            return Verification::Invalid;
        }
        let current = parsed.algorithm.as_str() == argon2::ARGON2ID_IDENT.as_str()
            && parsed.version == Some(Version::V0x13.into())
            && stored.m_cost() == self.params.m_cost_kib
            && stored.t_cost() == self.params.t_cost
            && stored.p_cost() == self.params.p_cost
            && stored.output_len() == Some(OUTPUT_LEN)
            && parsed.salt.as_ref().is_some_and(|salt| salt.len() >= SALT_LEN);
        if current { Verification::Valid } else { Verification::ValidNeedsRehash }
    }

    /// Spends the same time as a [`PasswordHasher::verify`] of a current hash, for requests
    /// naming an unknown account, so that response times do not reveal which accounts exist.
    pub fn verify_dummy(&self, password: &str) {
        let dummy = self.dummy_hash();
        std::hint::black_box(self.verify(dummy, password));
    }

    fn dummy_hash(&self) -> &str {
        // The parameters were validated in `new`, so hashing cannot fail; should it fail
        // anyway, the empty string makes the dummy verification fail fast instead of panicking.
        self.dummy
            .get_or_init(|| self.hash_with_salt(DUMMY_PASSWORD, DUMMY_SALT).unwrap_or_default())
    }
}

std::thread_local! {
    /// Argon2's working memory, kept per thread between verifications: allocating and zeroing
    /// 19 MiB for each sign-in costs page faults, and the allocator keeps the freed buffers anyway.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Recomputes the stored hash's output for `password` with the stored algorithm, version,
/// parameters and salt, in this thread's reusable memory, and compares in constant time.
fn recompute_matches(parsed: &PasswordHash, stored: &Params, password: &[u8]) -> bool {
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else { return false };
    let version = match parsed.version {
        Some(number) => match Version::try_from(number) {
            Ok(version) => version,
            Err(_) => return false,
        },
        None => Version::default(),
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else { return false };
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, stored.clone());
    let blocks_needed = stored.block_count();
    let computed = BLOCKS.with(|cell| {
        let Ok(mut blocks) = cell.try_borrow_mut() else { return false };
        if blocks.len() < blocks_needed {
            blocks.resize(blocks_needed, argon2::Block::new());
        }
        argon2
            .hash_password_into_with_memory(password, salt, &mut out, &mut blocks[..blocks_needed])
            .is_ok()
    });
    computed && crate::digest::ct_eq(&out, expected.as_bytes())
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").field("params", &self.params).finish_non_exhaustive()
    }
}

/// Hashes `password` with `params`; see [`PasswordHasher::hash`].
///
/// # Errors
///
/// Returns [`CryptoError::InvalidParams`] for unacceptable parameters and
/// [`CryptoError::PasswordHash`] if Argon2 fails.
pub fn hash(params: PasswordParams, rng: &dyn Rng, password: &str) -> Result<String, CryptoError> {
    PasswordHasher::new(params)?.hash(rng, password)
}

/// Checks `password` against `phc`, reporting a rehash when `phc` was not made with `params`;
/// see [`PasswordHasher::verify`]. Unacceptable `params` make every check
/// [`Verification::Invalid`].
#[must_use]
pub fn verify(params: PasswordParams, phc: &str, password: &str) -> Verification {
    match PasswordHasher::new(params) {
        Ok(hasher) => hasher.verify(phc, password),
        Err(_) => Verification::Invalid,
    }
}

/// Spends as long as a real [`verify`] with `params`; see [`PasswordHasher::verify_dummy`].
///
/// The dummy hash for each set of parameters is computed once per process and cached.
pub fn dummy_verify(params: PasswordParams, password: &str) {
    static CACHE: Mutex<Vec<(PasswordParams, String)>> = Mutex::new(Vec::new());
    let Ok(hasher) = PasswordHasher::new(params) else {
        return;
    };
    let cached = CACHE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|(p, _)| *p == params)
        .map(|(_, dummy)| dummy.clone());
    let dummy = match cached {
        Some(dummy) => dummy,
        None => {
            // Hashing happens outside the lock so that concurrent callers are not serialised.
            let dummy = hasher.dummy_hash().to_owned();
            CACHE.lock().unwrap_or_else(PoisonError::into_inner).push((params, dummy.clone()));
            dummy
        }
    };
    std::hint::black_box(hasher.verify(&dummy, password));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::FixedRng;
    use proptest::prelude::*;

    const FAST: PasswordParams = PasswordParams { m_cost_kib: 64, t_cost: 1, p_cost: 1 };

    #[test]
    fn the_reused_buffer_gives_the_same_answers_as_fresh_memory() {
        // Hashes of several shapes verified in turn on one thread (so its buffer is reused, grown
        // and shrunk), each checked against the argon2 crate's own verifier with fresh memory.
        let rng = crate::random::FixedRng::new(b"reuse");
        let shapes = [
            PasswordParams { m_cost_kib: 256, t_cost: 2, p_cost: 1 },
            PasswordParams { m_cost_kib: 64, t_cost: 1, p_cost: 1 },
            PasswordParams { m_cost_kib: 512, t_cost: 3, p_cost: 2 },
        ];
        for round in 0..2 {
            for params in shapes {
                let hasher = PasswordHasher::new(params).unwrap();
                let phc = hasher.hash(&rng, &format!("pw-{round}")).unwrap();
                let parsed = PasswordHash::new(&phc).unwrap();
                let fresh = |pw: &str| {
                    argon2::PasswordVerifier::verify_password(
                        &Argon2::default(),
                        pw.as_bytes(),
                        &parsed,
                    )
                    .is_ok()
                };
                assert!(hasher.verify(&phc, &format!("pw-{round}")).is_valid());
                assert!(fresh(&format!("pw-{round}")));
                assert!(!hasher.verify(&phc, "other").is_valid());
                assert!(!fresh("other"));
            }
        }
    }

    /// Made with the reference implementation:
    /// `echo -n "correct horse" | argon2 saltsaltsalt1234 -id -t 1 -k 64 -p 1 -l 32 -e`.
    const REFERENCE_ID: &str = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$tp5nQ7CZw1YdsTZ2DUssx5VmN0Y7dNAozQkVpFUQoKw";

    fn fast() -> PasswordHasher {
        PasswordHasher::new(FAST).unwrap()
    }

    #[test]
    fn default_params_are_owasp() {
        assert_eq!(
            PasswordParams::default(),
            PasswordParams { m_cost_kib: 19_456, t_cost: 2, p_cost: 1 }
        );
    }

    #[test]
    fn hash_and_verify_with_default_params() {
        let hasher = PasswordHasher::new(PasswordParams::default()).unwrap();
        let rng = FixedRng::new(b"default");
        let phc = hasher.hash(&rng, "correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert_eq!(hasher.verify(&phc, "correct horse battery staple"), Verification::Valid);
        assert_eq!(hasher.verify(&phc, "correct horse battery stapler"), Verification::Invalid);
    }

    #[test]
    fn hash_produces_verifiable_phc_with_fresh_salts() {
        let hasher = fast();
        let rng = FixedRng::new(b"salts");
        let a = hasher.hash(&rng, "hunter2").unwrap();
        let b = hasher.hash(&rng, "hunter2").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{a}");
        assert_ne!(a, b);
        assert_eq!(hasher.verify(&a, "hunter2"), Verification::Valid);
        assert_eq!(hasher.verify(&b, "hunter2"), Verification::Valid);
        assert_eq!(hasher.verify(&a, "hunter3"), Verification::Invalid);
        assert_eq!(hasher.verify(&a, ""), Verification::Invalid);
        assert!(hasher.verify(&a, "hunter2").is_valid());
        assert!(!Verification::Invalid.is_valid());
        assert!(Verification::ValidNeedsRehash.is_valid());
    }

    #[test]
    fn unicode_and_empty_passwords() {
        let hasher = fast();
        let rng = FixedRng::new(b"unicode");
        let phc = hasher.hash(&rng, "pässwörd 🔑").unwrap();
        assert_eq!(hasher.verify(&phc, "pässwörd 🔑"), Verification::Valid);
        assert_eq!(hasher.verify(&phc, "passwort 🔑"), Verification::Invalid);
        let empty = hasher.hash(&rng, "").unwrap();
        assert_eq!(hasher.verify(&empty, ""), Verification::Valid);
    }

    #[test]
    fn verifies_the_reference_implementation() {
        let hasher = fast();
        assert_eq!(hasher.verify(REFERENCE_ID, "correct horse"), Verification::Valid);
        assert_eq!(hasher.verify(REFERENCE_ID, "correct horsE"), Verification::Invalid);
        // The same password and salt through this crate gives the same PHC string.
        assert_eq!(
            hasher.hash_with_salt(b"correct horse", b"saltsaltsalt1234").unwrap(),
            REFERENCE_ID
        );
    }

    #[test]
    fn other_parameters_need_a_rehash() {
        let old = fast();
        let rng = FixedRng::new(b"rehash");
        let phc = old.hash(&rng, "pw").unwrap();
        for params in [
            PasswordParams { m_cost_kib: 128, ..FAST },
            PasswordParams { t_cost: 2, ..FAST },
            PasswordParams { p_cost: 2, m_cost_kib: 64, t_cost: 1 },
        ] {
            let new = PasswordHasher::new(params).unwrap();
            assert_eq!(new.verify(&phc, "pw"), Verification::ValidNeedsRehash, "{params:?}");
            assert_eq!(new.verify(&phc, "wrong"), Verification::Invalid);
            assert_eq!(verify(params, &phc, "pw"), Verification::ValidNeedsRehash);
        }
        assert_eq!(verify(FAST, &phc, "pw"), Verification::Valid);
    }

    #[test]
    fn other_variants_versions_and_lengths_need_a_rehash() {
        // All made with the reference implementation from the same password and salt.
        let argon2i = "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$wp1neHVxtY5TAwq/HDHEX6zf+P+kkLTRU1OewxucYn0";
        let short_output =
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$GUZEUThlEhD4llnCJLZBBw";
        let version_16 = "$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$24qZOVDiSUuktOT6JLsyWTTbAA7dIX9ldUP/EoDKGmw";
        let hasher = fast();
        for phc in [argon2i, short_output, version_16] {
            assert_eq!(
                hasher.verify(phc, "correct horse"),
                Verification::ValidNeedsRehash,
                "{phc}"
            );
            assert_eq!(hasher.verify(phc, "correct horse!"), Verification::Invalid, "{phc}");
        }
    }

    #[test]
    fn malformed_or_hostile_hashes_are_invalid() {
        let hasher = fast();
        let cases = [
            "",
            "hunter2",
            "$argon2id$",
            "$argon2id$v=19$m=64,t=1,p=1$",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$!!!",
            "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$tp5nQ7CZw1YdsTZ2DUssx5VmN0Y7dNAozQkVpFUQoKw",
            "$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHRzYWx0MTIzNA$tp5nQ7CZw1YdsTZ2DUssx5VmN0Y7dNAozQkVpFUQoKw",
            "$argon2id$v=99$m=64,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$tp5nQ7CZw1YdsTZ2DUssx5VmN0Y7dNAozQkVpFUQoKw",
            "$argon2x$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$tp5nQ7CZw1YdsTZ2DUssx5VmN0Y7dNAozQkVpFUQoKw",
            "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            // Hostile costs: 4 TiB of memory, a billion passes, too many lanes.
            "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$tp5nQ7CZw1YdsTZ2DUssx5VmN0Y7dNAozQkVpFUQoKw",
            "$argon2id$v=19$m=64,t=1000000000,p=1$c2FsdHNhbHRzYWx0MTIzNA$tp5nQ7CZw1YdsTZ2DUssx5VmN0Y7dNAozQkVpFUQoKw",
            "$argon2id$v=19$m=65536,t=1,p=255$c2FsdHNhbHRzYWx0MTIzNA$tp5nQ7CZw1YdsTZ2DUssx5VmN0Y7dNAozQkVpFUQoKw",
        ];
        for phc in cases {
            assert_eq!(hasher.verify(phc, "correct horse"), Verification::Invalid, "{phc}");
        }
    }

    #[test]
    fn invalid_params_are_refused() {
        for params in [
            PasswordParams { m_cost_kib: 7, t_cost: 1, p_cost: 1 },
            PasswordParams { m_cost_kib: 64, t_cost: 0, p_cost: 1 },
            PasswordParams { m_cost_kib: 64, t_cost: 1, p_cost: 0 },
            PasswordParams { m_cost_kib: 64, t_cost: 1, p_cost: 9 },
        ] {
            assert!(
                matches!(PasswordHasher::new(params), Err(CryptoError::InvalidParams)),
                "{params:?}"
            );
            assert_eq!(hash(params, &FixedRng::new(b""), "pw"), Err(CryptoError::InvalidParams));
            assert_eq!(verify(params, REFERENCE_ID, "correct horse"), Verification::Invalid);
        }
    }

    #[test]
    fn free_functions_match_the_hasher() {
        let rng = FixedRng::new(b"free");
        let phc = hash(FAST, &rng, "pw").unwrap();
        assert_eq!(verify(FAST, &phc, "pw"), Verification::Valid);
        dummy_verify(FAST, "pw");
        dummy_verify(FAST, "pw");
    }

    #[test]
    fn dummy_hash_uses_current_params_and_never_matches_by_accident() {
        let hasher = fast();
        hasher.verify_dummy("anything");
        let dummy = hasher.dummy_hash().to_owned();
        assert!(dummy.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{dummy}");
        // The dummy is computed once.
        assert_eq!(hasher.dummy_hash(), dummy);
        // A real verification against it costs the same and reports a current hash.
        assert_eq!(
            hasher.verify(&dummy, std::str::from_utf8(DUMMY_PASSWORD).unwrap()),
            Verification::Valid
        );
        assert_eq!(hasher.verify(&dummy, "anything"), Verification::Invalid);
    }

    #[test]
    fn debug_shows_only_params() {
        let text = format!("{:?}", fast());
        assert!(text.contains("m_cost_kib: 64"), "{text}");
        assert!(!text.contains('$'));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn verify_never_panics_on_arbitrary_strings(phc in ".*", password in ".{0,16}") {
            prop_assert_eq!(fast().verify(&phc, &password), Verification::Invalid);
        }

        #[test]
        fn verify_never_panics_on_phc_like_strings(
            alg in "argon2(id|i|d|x)?",
            version in proptest::option::of(0u32..40),
            m in 0u32..200,
            t in 0u32..3,
            p in 0u32..4,
            salt in "[A-Za-z0-9+/]{0,30}",
            output in "[A-Za-z0-9+/]{0,90}",
        ) {
            let version = version.map(|v| format!("v={v}$")).unwrap_or_default();
            let phc = format!("${alg}${version}m={m},t={t},p={p}${salt}${output}");
            let _ = fast().verify(&phc, "correct horse");
        }
    }
}
