//! CAPTCHA challenges: a short case-insensitive answer, a distorted PNG of it, and a recording of
//! it spoken (WAV) for people who cannot see the picture.
//!
//! The answer is drawn from the caller's [`Rng`]; the `captcha` crate only renders the picture
//! and adds noise with its own thread-local generator, which does not affect the answer.
//!
//! The recording is put together from one short clip per character of [`ALPHABET`], shipped in
//! `assets/captcha-audio/` (made once with espeak-ng; the README there says how). Each character
//! is played at a random speed and level after a random pause, over babble made of other clips
//! (some of them backwards) and white and brown noise. Every choice comes from the caller's
//! [`Rng`], so two recordings of one answer differ and no clip appears in them sample for sample.

use ::captcha::Captcha;
use ::captcha::filters::{Dots, Noise, Wave};

use crate::CryptoError;
use crate::random::{self, Rng};

/// The characters answers are drawn from: the digits 2 to 9 and the letters k, m, r, w and y.
///
/// Each is unmistakable both in the picture (no `0`/`o`, `1`/`l`/`i`, `9`/`q`, `2`/`z`, `5`/`s`)
/// and spoken: none of the letters whose names end in "ee" (b c d e g p t v z), none that rhyme
/// with k or eight (a h j), no m/n or f/s/x pair, and no q or u beside two.
pub const ALPHABET: &str = "kmrwy23456789";

/// The shortest answer.
pub const MIN_LEN: usize = 5;

/// The longest answer.
pub const MAX_LEN: usize = 6;

/// The width of the rendered image in pixels.
pub const WIDTH: u32 = 220;

/// The height of the rendered image in pixels.
pub const HEIGHT: u32 = 120;

/// Samples per second of the shipped clips and of the rendered recording (8-bit mono PCM).
pub const SAMPLE_RATE: u32 = 8000;

/// A CAPTCHA challenge. Keep `answer` on the server (or a digest of it); send `png` and `wav` to
/// the client.
#[derive(Clone)]
pub struct Challenge {
    /// The expected answer in normalised form (lowercase, no spaces).
    pub answer: String,
    /// The rendered image.
    pub png: Vec<u8>,
    /// The answer spoken over noise: a WAV file (RIFF, PCM, 8 kHz, mono, 8 bits), a few seconds
    /// and a few tens of kilobytes long.
    pub wav: Vec<u8>,
}

impl std::fmt::Debug for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenge")
            .field("answer", &crate::REDACTED)
            .field("png_len", &self.png.len())
            .field("wav_len", &self.wav.len())
            .finish_non_exhaustive()
    }
}

/// Creates a challenge with a 5- or 6-character answer from [`ALPHABET`].
///
/// # Errors
///
/// Returns [`CryptoError::Captcha`] if the image or the recording cannot be rendered.
pub fn new_challenge(rng: &dyn Rng) -> Result<Challenge, CryptoError> {
    let extra = usize::try_from(random::below(rng, 2)).unwrap_or(0);
    let answer = random::from_alphabet(rng, ALPHABET.as_bytes(), MIN_LEN + extra);
    challenge_for(&answer, rng)
}

/// Renders the picture and a fresh recording of a given `answer`, which must be [`MIN_LEN`] to
/// [`MAX_LEN`] characters from [`ALPHABET`]. [`new_challenge`] draws the answer first; anything
/// else that calls this must draw its answer at random too.
///
/// # Errors
///
/// Returns [`CryptoError::Captcha`] if the answer is not made of [`ALPHABET`] or has the wrong
/// length, or if the image or the recording cannot be rendered.
pub fn challenge_for(answer: &str, rng: &dyn Rng) -> Result<Challenge, CryptoError> {
    let valid =
        (MIN_LEN..=MAX_LEN).contains(&answer.len()) && answer.chars().all(|c| ALPHABET.contains(c));
    if !valid {
        return Err(CryptoError::Captcha);
    }
    let png = render(answer)?;
    let wav = audio::render(answer, rng).ok_or(CryptoError::Captcha)?;
    Ok(Challenge { answer: answer.to_owned(), png, wav })
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

/// The spoken recording: the answer's clips in order with random speed, level and pauses, over
/// babble and noise.
mod audio {
    use std::ops::Range;

    use super::{ALPHABET, SAMPLE_RATE};
    use crate::random::{self, Rng};

    /// One clip per character of [`ALPHABET`]: 8 kHz mono 16-bit PCM, trimmed of silence.
    const CLIPS: [(char, &[u8]); 13] = [
        ('k', include_bytes!("../assets/captcha-audio/k.wav")),
        ('m', include_bytes!("../assets/captcha-audio/m.wav")),
        ('r', include_bytes!("../assets/captcha-audio/r.wav")),
        ('w', include_bytes!("../assets/captcha-audio/w.wav")),
        ('y', include_bytes!("../assets/captcha-audio/y.wav")),
        ('2', include_bytes!("../assets/captcha-audio/2.wav")),
        ('3', include_bytes!("../assets/captcha-audio/3.wav")),
        ('4', include_bytes!("../assets/captcha-audio/4.wav")),
        ('5', include_bytes!("../assets/captcha-audio/5.wav")),
        ('6', include_bytes!("../assets/captcha-audio/6.wav")),
        ('7', include_bytes!("../assets/captcha-audio/7.wav")),
        ('8', include_bytes!("../assets/captcha-audio/8.wav")),
        ('9', include_bytes!("../assets/captcha-audio/9.wav")),
    ];

    /// Silence before the first character, in seconds.
    const LEAD: (f32, f32) = (0.3, 0.6);
    /// The pause between two characters, in seconds.
    const GAP: (f32, f32) = (0.2, 0.45);
    /// Silence after the last character, in seconds.
    const TAIL: (f32, f32) = (0.3, 0.5);
    /// How far a character's speed (and with it its pitch) moves from the recording, either way.
    /// Never less than 5%, so that no clip is ever played as shipped.
    const SPEED_SHIFT: (f32, f32) = (0.06, 0.14);
    /// The level of a character, the loudest being 1.
    const VOICE_GAIN: (f32, f32) = (0.7, 1.0);
    /// Babble clips per second of recording.
    const BABBLE_PER_SEC: f32 = 2.5;
    /// The speed of a babble clip.
    const BABBLE_SPEED: (f32, f32) = (0.75, 1.35);
    /// The level of a babble clip played forwards, and of one played backwards.
    const BABBLE_GAIN: (f32, f32) = (0.03, 0.07);
    const BABBLE_BACKWARDS_GAIN: (f32, f32) = (0.05, 0.12);
    /// Root-mean-square levels of white and of brown noise.
    const WHITE_RMS: (f32, f32) = (0.008, 0.02);
    const BROWN_RMS: (f32, f32) = (0.01, 0.025);
    /// Fade in and out over 5 ms so that no clip starts or ends with a click.
    const FADE: usize = 40;
    /// The loudest sample of the result, full scale being 1.
    const PEAK: f32 = 0.95;

    /// Renders the recording of `answer` as a WAV file; `None` if a character has no clip.
    pub(super) fn render(answer: &str, rng: &dyn Rng) -> Option<Vec<u8>> {
        let tracks = compose(answer, rng)?;
        Some(encode(&tracks.mix()))
    }

    /// The two layers of a recording, kept apart so tests can measure them.
    pub(super) struct Tracks {
        /// The answer's characters and the silence around them.
        pub(super) voice: Vec<f32>,
        /// Babble and noise, as long as `voice`.
        pub(super) background: Vec<f32>,
        /// Where each character is in `voice`, in order.
        #[cfg_attr(not(test), expect(dead_code, reason = "only tests measure each character"))]
        pub(super) spans: Vec<Range<usize>>,
    }

    impl Tracks {
        pub(super) fn mix(&self) -> Vec<f32> {
            self.voice.iter().zip(&self.background).map(|(v, b)| v + b).collect()
        }
    }

    pub(super) fn compose(answer: &str, rng: &dyn Rng) -> Option<Tracks> {
        let mut voice = vec![0.0; seconds(uniform(rng, LEAD))];
        let mut spans = Vec::with_capacity(answer.len());
        for (i, c) in answer.chars().enumerate() {
            if i > 0 {
                voice.resize(voice.len() + seconds(uniform(rng, GAP)), 0.0);
            }
            let shift = uniform(rng, SPEED_SHIFT);
            let speed = match random::below(rng, 2) {
                0 => 1.0 - shift,
                _ => 1.0 + shift,
            };
            let mut sound = resample(&clip(c)?, speed);
            fade(&mut sound);
            let gain = uniform(rng, VOICE_GAIN);
            let start = voice.len();
            voice.extend(sound.iter().map(|s| s * gain));
            spans.push(start..voice.len());
        }
        voice.resize(voice.len() + seconds(uniform(rng, TAIL)), 0.0);

        let len = voice.len();
        let mut background = vec![0.0; len];
        let characters: Vec<char> = ALPHABET.chars().collect();
        let n_babble = (len as f32 / SAMPLE_RATE as f32 * BABBLE_PER_SEC).round() as usize;
        for _ in 0..n_babble {
            let c = characters[pick(rng, characters.len())];
            let mut sound = resample(&clip(c)?, uniform(rng, BABBLE_SPEED));
            let backwards = random::below(rng, 2) == 1;
            if backwards {
                sound.reverse();
            }
            fade(&mut sound);
            let gain = match backwards {
                true => uniform(rng, BABBLE_BACKWARDS_GAIN),
                false => uniform(rng, BABBLE_GAIN),
            };
            // Clips that start late are cut off by the end of the recording.
            let start = pick(rng, len);
            for (slot, s) in background[start..].iter_mut().zip(&sound) {
                *slot += s * gain;
            }
        }

        let white_rms = uniform(rng, WHITE_RMS);
        let brown_rms = uniform(rng, BROWN_RMS);
        let mut bytes = vec![0u8; 2 * len];
        rng.fill(&mut bytes);
        let (white, steps) = bytes.split_at(len);
        // Brown noise is a leaky running sum of white noise; scaled to its level afterwards.
        let mut brown = Vec::with_capacity(len);
        let mut level = 0.0;
        for &step in steps {
            level = level * 0.99 + signed(step);
            brown.push(level);
        }
        let brown_scale = brown_rms / rms(&brown).max(f32::EPSILON);
        // Uniform noise on [-1, 1] has a root mean square of 1/sqrt(3).
        let white_scale = white_rms * 3f32.sqrt();
        for ((slot, &w), b) in background.iter_mut().zip(white).zip(&brown) {
            *slot += signed(w) * white_scale + b * brown_scale;
        }
        Some(Tracks { voice, background, spans })
    }

    /// The decoded clip for `c`.
    pub(super) fn clip(c: char) -> Option<Vec<f32>> {
        let (_, wav) = CLIPS.iter().find(|(it, _)| *it == c)?;
        let pcm = parse(wav)?;
        if pcm.format != (1, 1, SAMPLE_RATE, 16) {
            return None;
        }
        let samples = pcm
            .data
            .chunks_exact(2)
            .map(|it| f32::from(i16::from_le_bytes([it[0], it[1]])) / 32768.0)
            .collect();
        Some(samples)
    }

    /// The characters that have a clip.
    #[cfg(test)]
    pub(super) fn clip_characters() -> impl Iterator<Item = (char, usize)> {
        CLIPS.iter().map(|(c, wav)| (*c, wav.len()))
    }

    /// A PCM WAV file's format and samples.
    pub(super) struct Pcm<'a> {
        /// `(format tag, channels, sample rate, bits per sample)`; PCM is tag 1.
        pub(super) format: (u16, u16, u32, u16),
        pub(super) data: &'a [u8],
    }

    /// Reads a RIFF WAVE file: its `fmt ` chunk and the `data` chunk after it.
    pub(super) fn parse(wav: &[u8]) -> Option<Pcm<'_>> {
        if wav.get(0..4)? != b"RIFF" || wav.get(8..12)? != b"WAVE" {
            return None;
        }
        let mut rest = wav.get(12..)?;
        let mut format = None;
        while rest.len() >= 8 {
            let id = &rest[0..4];
            let size = usize::try_from(u32_at(rest, 4)?).ok()?;
            let body = rest.get(8..8usize.checked_add(size)?)?;
            match id {
                b"fmt " if body.len() >= 16 => {
                    format = Some((
                        u16_at(body, 0)?,
                        u16_at(body, 2)?,
                        u32_at(body, 4)?,
                        u16_at(body, 14)?,
                    ));
                }
                b"data" => return Some(Pcm { format: format?, data: body }),
                _ => {}
            }
            // Chunks are padded to an even length.
            rest = rest.get(8 + size + size % 2..).unwrap_or_default();
        }
        None
    }

    fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
    }

    fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    }

    /// Peak-normalises `samples` and writes them as 8-bit unsigned mono PCM in a RIFF WAVE file.
    fn encode(samples: &[f32]) -> Vec<u8> {
        let peak = samples.iter().fold(0.0f32, |max, s| max.max(s.abs())).max(f32::EPSILON);
        let scale = PEAK / peak * 127.0;
        let mut data: Vec<u8> =
            samples.iter().map(|s| (128.0 + s * scale).round().clamp(0.0, 255.0) as u8).collect();
        // RIFF chunks have an even length; one more sample of silence keeps it so.
        if data.len() % 2 == 1 {
            data.push(128);
        }
        let data_len = u32::try_from(data.len()).unwrap_or(u32::MAX - 36);
        let mut wav = Vec::with_capacity(44 + data.len());
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&(36 + data_len).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
        wav.extend_from_slice(&1u16.to_le_bytes()); // mono
        wav.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
        wav.extend_from_slice(&SAMPLE_RATE.to_le_bytes()); // bytes per second
        wav.extend_from_slice(&1u16.to_le_bytes()); // bytes per sample
        wav.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&data_len.to_le_bytes());
        wav.extend_from_slice(&data);
        wav
    }

    /// Plays `clip` at `speed` (1 is as recorded; above is faster and higher), by linear
    /// interpolation.
    fn resample(clip: &[f32], speed: f32) -> Vec<f32> {
        let len = (clip.len() as f32 / speed) as usize;
        (0..len)
            .map(|i| {
                let at = i as f32 * speed;
                let index = at as usize;
                let frac = at - index as f32;
                let a = clip.get(index).copied().unwrap_or(0.0);
                let b = clip.get(index + 1).copied().unwrap_or(0.0);
                a + (b - a) * frac
            })
            .collect()
    }

    fn fade(sound: &mut [f32]) {
        let len = sound.len();
        let n = FADE.min(len / 2);
        for i in 0..n {
            let gain = i as f32 / n as f32;
            sound[i] *= gain;
            sound[len - 1 - i] *= gain;
        }
    }

    pub(super) fn rms(samples: &[f32]) -> f32 {
        let sum: f32 = samples.iter().map(|s| s * s).sum();
        (sum / samples.len().max(1) as f32).sqrt()
    }

    fn seconds(secs: f32) -> usize {
        (secs * SAMPLE_RATE as f32) as usize
    }

    /// A random byte as a sample in `[-1, 1]`.
    fn signed(byte: u8) -> f32 {
        (f32::from(byte) - 127.5) / 127.5
    }

    /// A uniform draw from `[low, high)`.
    fn uniform(rng: &dyn Rng, (low, high): (f32, f32)) -> f32 {
        let mut bytes = [0u8; 4];
        rng.fill(&mut bytes);
        // 24 random bits fill an f32's mantissa exactly.
        let unit = (u32::from_le_bytes(bytes) >> 8) as f32 / (1u32 << 24) as f32;
        low + (high - low) * unit
    }

    /// A uniform index below `len` (which is far below `u32::MAX` here).
    fn pick(rng: &dyn Rng, len: usize) -> usize {
        let bound = u32::try_from(len).unwrap_or(u32::MAX);
        usize::try_from(random::below(rng, bound)).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use super::*;
    use crate::random::FixedRng;

    const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

    #[test]
    fn challenge_has_valid_answer_image_and_recording() {
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
            assert!(challenge.wav.starts_with(b"RIFF"));
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
        // The recording draws only on the caller's generator too: same seed, same bytes.
        assert_eq!(a.wav, b.wav);
        let c = new_challenge(&FixedRng::new(b"different")).unwrap();
        assert_ne!(a.answer, c.answer);
    }

    #[test]
    fn challenge_for_refuses_answers_outside_the_alphabet_or_length() {
        let rng = FixedRng::new(b"refuse");
        for answer in ["", "k2m3", "k2m3r4w", "k2m3a", "K2M3R", "k2 m3r", "k2m3r\u{e9}"] {
            assert!(challenge_for(answer, &rng).is_err(), "{answer:?}");
        }
        assert_eq!(challenge_for("k2m3r", &rng).unwrap().answer, "k2m3r");
    }

    #[test]
    fn every_alphabet_character_renders() {
        // Renders the whole alphabet in five-character chunks so a missing glyph is caught.
        let chars: Vec<char> = ALPHABET.chars().collect();
        for chunk in chars.chunks(MIN_LEN) {
            let text: String = chunk.iter().collect();
            let png = render(&text).unwrap();
            assert!(png.starts_with(PNG_MAGIC), "{text}");
        }
    }

    #[test]
    fn alphabet_excludes_ambiguous_characters() {
        // Confusable in the picture, then when spoken.
        for c in "0oO1lIiqzZsS".chars().chain("bcdegptvahjnfxu".chars()) {
            assert!(!ALPHABET.contains(c), "{c}");
        }
        assert_eq!(ALPHABET.len(), 13);
        let mut unique: Vec<char> = ALPHABET.chars().collect();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ALPHABET.len());
    }

    #[test]
    fn every_alphabet_character_has_a_short_trimmed_clip() {
        let mut total = 0;
        for c in ALPHABET.chars() {
            let samples = audio::clip(c).unwrap_or_else(|| panic!("no clip for {c}"));
            let secs = samples.len() as f32 / SAMPLE_RATE as f32;
            assert!((0.25..0.7).contains(&secs), "{c}: {secs} s");
            let peak = samples.iter().fold(0.0f32, |max, s| max.max(s.abs()));
            assert!(peak > 0.5, "{c} is loud enough: {peak}");
            // Trimmed: sound within the first and the last 20 ms.
            let edge = SAMPLE_RATE as usize / 50;
            let audible = |part: &[f32]| part.iter().any(|s| s.abs() > 0.003);
            assert!(audible(&samples[..edge]), "{c} starts with silence");
            assert!(audible(&samples[samples.len() - edge..]), "{c} ends with silence");
        }
        for (c, size) in audio::clip_characters() {
            assert!(ALPHABET.contains(c), "a clip for {c}, which answers never hold");
            total += size;
        }
        assert!(total < 150 * 1024, "the clips take {total} bytes");
    }

    /// `(format tag, channels, rate, bits)`, the data length and the RIFF size of a rendering.
    fn header(wav: &[u8]) -> ((u16, u16, u32, u16), usize) {
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(&wav[8..16], b"WAVEfmt ");
        let riff_size = u32::from_le_bytes(wav[4..8].try_into().unwrap()) as usize;
        assert_eq!(riff_size, wav.len() - 8);
        let pcm = audio::parse(wav).unwrap();
        assert_eq!(pcm.data.len(), wav.len() - 44, "one canonical 44-byte header");
        (pcm.format, pcm.data.len())
    }

    #[test]
    fn recording_is_a_short_pcm_wav() {
        let rng = FixedRng::new(b"wav");
        for answer in ["k2m3r", "wy4567", "898989", "kmrwy"] {
            let wav = challenge_for(answer, &rng).unwrap().wav;
            let (format, data_len) = header(&wav);
            assert_eq!(format, (1, 1, SAMPLE_RATE, 8), "PCM, mono, 8 kHz, 8 bits");
            let secs = data_len as f32 / SAMPLE_RATE as f32;
            assert!((2.5..8.0).contains(&secs), "{answer}: {secs} s");
            assert!(wav.len() < 64 * 1024, "{answer}: {} bytes", wav.len());
            // Loud but never clipped, centred on silence.
            let data = &wav[44..];
            assert!(data.iter().any(|s| !(26..=230).contains(s)), "{answer} is quiet");
            assert!(data.iter().all(|s| (1..255).contains(s)), "{answer} clips");
            let mean = data.iter().map(|&s| f64::from(s)).sum::<f64>() / data.len() as f64;
            assert!((120.0..136.0).contains(&mean), "{answer}: mean {mean}");
        }
    }

    #[test]
    fn two_recordings_of_one_answer_differ() {
        let rng = FixedRng::new(b"differ");
        let first = challenge_for("k2m3r", &rng).unwrap();
        let second = challenge_for("k2m3r", &rng).unwrap();
        assert_ne!(first.wav, second.wav);
        assert_ne!(first.wav.len(), second.wav.len(), "timing differs too");
        let other_seed = challenge_for("k2m3r", &FixedRng::new(b"other")).unwrap();
        assert_ne!(first.wav, other_seed.wav);
    }

    #[test]
    fn each_character_is_heard_in_order_above_the_background() {
        let rng = FixedRng::new(b"layers");
        for answer in ["k2m3r", "wy4567", "999999"] {
            let tracks = audio::compose(answer, &rng).unwrap();
            assert_eq!(tracks.voice.len(), tracks.background.len());
            assert_eq!(tracks.spans.len(), answer.len(), "{answer}");
            let min_gap = SAMPLE_RATE as usize / 5;
            assert!(tracks.spans[0].start >= 3 * SAMPLE_RATE as usize / 10, "lead-in");
            for pair in tracks.spans.windows(2) {
                assert!(pair[1].start - pair[0].end >= min_gap, "{answer}: {pair:?}");
            }
            for (span, c) in tracks.spans.iter().zip(answer.chars()) {
                // Played 5% to 14% faster or slower than recorded.
                let recorded = audio::clip(c).unwrap().len() as f32;
                let ratio = recorded / span.len() as f32;
                assert!((0.85..=0.951).contains(&ratio) || (1.049..=1.15).contains(&ratio));
                // Clearly louder than the babble and noise under it.
                let voice = audio::rms(&tracks.voice[span.clone()]);
                let background = audio::rms(&tracks.background[span.clone()]);
                let snr = 20.0 * (voice / background).log10();
                assert!(snr > 6.0, "{answer}/{c}: {snr} dB");
                assert!(snr < 30.0, "{answer}/{c}: the background is audible ({snr} dB)");
            }
            // The pauses are not silent, so silence does not mark where characters are.
            let gap = tracks.spans[0].end..tracks.spans[1].start;
            assert!(audio::rms(&tracks.background[gap]) > 0.01, "{answer}");
        }
    }

    /// The highest normalised cross-correlation of `clip` with `signal` for shifts of the clip's
    /// start over `starts`.
    fn best_match(signal: &[f32], clip: &[f32], starts: Range<usize>) -> f32 {
        let clip_energy: f32 = clip.iter().map(|s| s * s).sum();
        starts
            .filter(|start| start + clip.len() <= signal.len())
            .map(|start| {
                let window = &signal[start..start + clip.len()];
                let dot: f32 = window.iter().zip(clip).map(|(a, b)| a * b).sum();
                let energy: f32 = window.iter().map(|s| s * s).sum();
                dot / (clip_energy * energy).sqrt().max(f32::EPSILON)
            })
            .fold(0.0, f32::max)
    }

    #[test]
    fn no_clip_is_played_as_shipped() {
        // The recording never holds a clip sample for sample, so comparing the shipped clips
        // with it does not find the characters.
        let rng = FixedRng::new(b"verbatim");
        for answer in ["k2m3r", "wy4567"] {
            let tracks = audio::compose(answer, &rng).unwrap();
            let mix = tracks.mix();
            for (span, c) in tracks.spans.iter().zip(answer.chars()) {
                let clip = audio::clip(c).unwrap();
                let starts = span.start.saturating_sub(200)..span.start + 200;
                let score = best_match(&mix, &clip, starts);
                assert!(score < 0.8, "{answer}/{c}: correlation {score}");
            }
            // The measure finds a clip that is put in as shipped over the same background.
            let mut planted = tracks.background.clone();
            let clip = audio::clip('k').unwrap();
            for (slot, s) in planted[1000..].iter_mut().zip(&clip) {
                *slot += s;
            }
            assert!(best_match(&planted, &clip, 800..1200) > 0.8);
        }
    }

    #[test]
    fn parse_refuses_malformed_files() {
        let wav = challenge_for("k2m3r", &FixedRng::new(b"parse")).unwrap().wav;
        assert!(audio::parse(&wav).is_some());
        assert!(audio::parse(&wav[..20]).is_none());
        assert!(audio::parse(b"").is_none());
        let mut wrong_magic = wav.clone();
        wrong_magic[0] = b'X';
        assert!(audio::parse(&wrong_magic).is_none());
        let mut overlong = wav.clone();
        overlong[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(audio::parse(&overlong).is_none());
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
