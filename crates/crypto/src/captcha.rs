//! CAPTCHA challenges: a short case-insensitive answer, a distorted PNG of it and a spoken
//! spelling for people who cannot see the image.
//!
//! The answer is drawn from the caller's [`Rng`]; the `captcha` crate only renders it and adds
//! noise with its own thread-local generator, which does not affect the answer.

use ::captcha::Captcha;
use ::captcha::filters::{Dots, Noise, Wave};

use crate::CryptoError;
use crate::random::{self, Rng};

/// The characters answers are drawn from: lowercase letters and digits without the easily
/// confused `0`, `o`, `1`, `l` and `i`.
pub const ALPHABET: &str = "abcdefghjkmnpqrstuvwxyz23456789";

/// The shortest answer.
pub const MIN_LEN: usize = 5;

/// The longest answer.
pub const MAX_LEN: usize = 6;

/// The width of the rendered image in pixels.
pub const WIDTH: u32 = 220;

/// The height of the rendered image in pixels.
pub const HEIGHT: u32 = 120;

/// A CAPTCHA challenge. Keep `answer` on the server (or a digest of it); send `png` and
/// `spoken` to the client.
#[derive(Clone)]
pub struct Challenge {
    /// The expected answer in normalised form (lowercase, no spaces).
    pub answer: String,
    /// The rendered image.
    pub png: Vec<u8>,
    /// The answer spelled out for screen readers and speech synthesis, for example
    /// `"h as in hotel, seven, k as in kilo, two, m as in mike"`.
    pub spoken: String,
}

impl std::fmt::Debug for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenge")
            .field("answer", &crate::REDACTED)
            .field("png_len", &self.png.len())
            .finish_non_exhaustive()
    }
}

/// Creates a challenge with a 5- or 6-character answer from [`ALPHABET`].
///
/// # Errors
///
/// Returns [`CryptoError::Captcha`] if the image cannot be rendered.
pub fn new_challenge(rng: &dyn Rng) -> Result<Challenge, CryptoError> {
    let extra = usize::try_from(random::below(rng, 2)).unwrap_or(0);
    let answer = random::from_alphabet(rng, ALPHABET.as_bytes(), MIN_LEN + extra);
    let png = render(&answer)?;
    let spoken = spoken(&answer);
    Ok(Challenge { answer, png, spoken })
}

/// Renders `answer` as a distorted PNG.
fn render(answer: &str) -> Result<Vec<u8>, CryptoError> {
    let mut image = Captcha::new();
    // The crate picks each character at random from its allowed set; allowing exactly one
    // character at a time makes it draw the answer chosen above.
    for c in answer.chars() {
        image.set_chars(&[c]).add_char();
    }
    if image.chars_as_string() != answer {
        return Err(CryptoError::Captcha);
    }
    image
        .apply_filter(Noise::new(0.2))
        .apply_filter(Wave::new(2.0, 20.0))
        .view(WIDTH, HEIGHT)
        .apply_filter(Dots::new(8).min_radius(3).max_radius(6));
    image.as_png().ok_or(CryptoError::Captcha)
}

/// Spells `answer` out: letters with their NATO phonetic word, digits as words.
#[must_use]
pub fn spoken(answer: &str) -> String {
    answer
        .chars()
        .map(|c| match word(c) {
            Some(w) if c.is_ascii_digit() => w.to_owned(),
            Some(w) => format!("{c} as in {w}"),
            None => c.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn word(c: char) -> Option<&'static str> {
    const LETTERS: [&str; 26] = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliett", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
        "sierra", "tango", "uniform", "victor", "whiskey", "x-ray", "yankee", "zulu",
    ];
    const DIGITS: [&str; 10] =
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
    match c {
        'a'..='z' => LETTERS.get((u32::from(c) - u32::from('a')) as usize).copied(),
        '0'..='9' => DIGITS.get((u32::from(c) - u32::from('0')) as usize).copied(),
        _ => None,
    }
}

/// Reads a spelled-out answer back (`"h as in hotel, seven"` → `"h7"`): what a person does when
/// listening to it, and what tests do to solve a challenge through its accessible form.
#[must_use]
pub fn answer_from_spoken(spoken: &str) -> Option<String> {
    let mut out = String::new();
    for part in spoken.split(',').map(str::trim) {
        match part.split_once(" as in ") {
            Some((letter, _)) if letter.len() == 1 => out.push_str(letter),
            Some(_) => return None,
            None => {
                let digit = ('0'..='9').find(|d| word(*d) == Some(part))?;
                out.push(digit);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Normalises a user's answer for comparison: trims, lowercases and drops all whitespace.
#[must_use]
pub fn normalize_answer(input: &str) -> String {
    input.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase).collect()
}

/// Compares a user's `input` with the `expected` answer after normalising both, in constant
/// time with respect to the contents.
#[must_use]
pub fn check_answer(expected: &str, input: &str) -> bool {
    crate::digest::ct_eq(normalize_answer(expected).as_bytes(), normalize_answer(input).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::FixedRng;

    const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

    #[test]
    fn spoken_answers_read_back() {
        for answer in ["h7k2m", "abcdef", "23456z"] {
            assert_eq!(answer_from_spoken(&spoken(answer)).as_deref(), Some(answer));
        }
        assert_eq!(answer_from_spoken("nonsense"), None);
        assert_eq!(answer_from_spoken(""), None);
    }

    #[test]
    fn challenge_has_valid_answer_image_and_spelling() {
        let rng = FixedRng::new(b"captcha");
        let mut lengths = std::collections::HashSet::new();
        for _ in 0..6 {
            let challenge = new_challenge(&rng).unwrap();
            let answer = &challenge.answer;
            assert!((MIN_LEN..=MAX_LEN).contains(&answer.len()), "{answer}");
            assert!(answer.chars().all(|c| ALPHABET.contains(c)), "{answer}");
            assert_eq!(normalize_answer(answer), *answer);
            assert!(challenge.png.starts_with(PNG_MAGIC));
            assert_eq!(&challenge.png[12..16], b"IHDR");
            let width = u32::from_be_bytes(challenge.png[16..20].try_into().unwrap());
            let height = u32::from_be_bytes(challenge.png[20..24].try_into().unwrap());
            assert_eq!((width, height), (WIDTH, HEIGHT));
            assert_eq!(challenge.spoken.split(", ").count(), answer.len());
            assert!(check_answer(answer, &answer.to_uppercase()));
            lengths.insert(answer.len());
        }
        assert_eq!(lengths.len(), 2, "both lengths should occur");
    }

    #[test]
    fn answers_come_from_the_callers_rng() {
        let a = new_challenge(&FixedRng::new(b"same")).unwrap();
        let b = new_challenge(&FixedRng::new(b"same")).unwrap();
        assert_eq!(a.answer, b.answer);
        assert_eq!(a.spoken, b.spoken);
        let c = new_challenge(&FixedRng::new(b"different")).unwrap();
        assert_ne!(a.answer, c.answer);
    }

    #[test]
    fn every_alphabet_character_renders() {
        // Renders the whole alphabet in six-character chunks so a missing glyph is caught.
        let chars: Vec<char> = ALPHABET.chars().collect();
        for chunk in chars.chunks(MAX_LEN) {
            let text: String = chunk.iter().collect();
            let png = render(&text).unwrap();
            assert!(png.starts_with(PNG_MAGIC), "{text}");
        }
    }

    #[test]
    fn alphabet_excludes_ambiguous_characters() {
        for c in ['0', 'o', 'O', '1', 'l', 'I', 'i'] {
            assert!(!ALPHABET.contains(c), "{c}");
        }
        assert_eq!(ALPHABET.len(), 31);
    }

    #[test]
    fn spoken_format() {
        assert_eq!(spoken("h7k2m"), "h as in hotel, seven, k as in kilo, two, m as in mike");
        assert_eq!(spoken("x9"), "x as in x-ray, nine");
        assert_eq!(spoken(""), "");
    }

    #[test]
    fn normalisation_and_checking() {
        assert_eq!(normalize_answer("  H7 k2M\t"), "h7k2m");
        assert_eq!(normalize_answer(""), "");
        assert!(check_answer("h7k2m", " H7K 2M "));
        assert!(!check_answer("h7k2m", "h7k2n"));
        assert!(!check_answer("h7k2m", "h7k2"));
        assert!(!check_answer("h7k2m", ""));
    }

    #[test]
    fn debug_hides_the_answer() {
        let challenge = new_challenge(&FixedRng::new(b"debug")).unwrap();
        let text = format!("{challenge:?}");
        assert!(!text.contains(&challenge.answer), "{text}");
        assert!(text.contains("[redacted]"));
    }
}
