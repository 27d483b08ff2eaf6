//! RFC 4648 base32 (the alphabet authenticator apps use for TOTP secrets).

use crate::CryptoError;

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Encodes bytes as uppercase RFC 4648 base32 without padding.
#[must_use]
pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity((data.len() * 8).div_ceil(5));
    let mut buffer: u16 = 0;
    let mut bits: u32 = 0;
    for &byte in data {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[usize::from((buffer >> bits) & 0x1f)]));
        }
        // Only the low `bits` bits are still pending; dropping the rest keeps the buffer small.
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[usize::from((buffer << (5 - bits)) & 0x1f)]));
    }
    out
}

/// Decodes RFC 4648 base32, accepting lowercase letters, spaces, hyphens and trailing `=`.
///
/// Authenticator apps and users often show secrets in lowercase groups separated by spaces,
/// so those separators are ignored.
///
/// # Errors
///
/// Returns [`CryptoError::InvalidBase32`] for characters outside the alphabet, padding in the
/// middle, an impossible length or non-zero bits left over at the end.
pub fn decode(text: &str) -> Result<Vec<u8>, CryptoError> {
    let trimmed = text.trim_end_matches(|c: char| c == '=' || c.is_whitespace());
    let mut out = Vec::with_capacity(trimmed.len() * 5 / 8);
    let mut buffer: u16 = 0;
    let mut bits: u32 = 0;
    let mut symbols = 0usize;
    for c in trimmed.chars() {
        if c.is_whitespace() || c == '-' {
            continue;
        }
        let value = match c.to_ascii_uppercase() {
            u @ 'A'..='Z' => u32::from(u) - u32::from('A'),
            d @ '2'..='7' => u32::from(d) - u32::from('2') + 26,
            _ => return Err(CryptoError::InvalidBase32),
        };
        symbols += 1;
        buffer = (buffer << 5) | u16::try_from(value).map_err(|_| CryptoError::InvalidBase32)?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(
                u8::try_from((buffer >> bits) & 0xff).map_err(|_| CryptoError::InvalidBase32)?,
            );
            buffer &= (1 << bits) - 1;
        }
    }
    // Valid unpadded lengths leave 0, 2, 4, 5 or 7 symbols in the last group of eight.
    if matches!(symbols % 8, 1 | 3 | 6) || buffer != 0 {
        return Err(CryptoError::InvalidBase32);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_4648_vectors() {
        let vectors: [(&[u8], &str); 7] = [
            (b"", ""),
            (b"f", "MY"),
            (b"fo", "MZXQ"),
            (b"foo", "MZXW6"),
            (b"foob", "MZXW6YQ"),
            (b"fooba", "MZXW6YTB"),
            (b"foobar", "MZXW6YTBOI"),
        ];
        for (raw, text) in vectors {
            assert_eq!(encode(raw), text);
            assert_eq!(decode(text).unwrap(), raw);
        }
        assert_eq!(decode("MZXW6YTBOI======").unwrap(), b"foobar");
        assert_eq!(decode("mzxw 6ytb-oi").unwrap(), b"foobar");
    }

    #[test]
    fn rfc_6238_secret() {
        assert_eq!(encode(b"12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn rejects_invalid_text() {
        for bad in ["M", "MZX", "MZXW6Y", "0", "1AAAAAAA", "MZ=XQ", "MZ!Q", "MZ", "ü"] {
            assert_eq!(decode(bad), Err(CryptoError::InvalidBase32), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(data: Vec<u8>) {
            let text = encode(&data);
            prop_assert!(text.bytes().all(|b| ALPHABET.contains(&b)));
            prop_assert_eq!(decode(&text).unwrap(), data.clone());
            prop_assert_eq!(decode(&text.to_ascii_lowercase()).unwrap(), data);
        }

        #[test]
        fn decode_never_panics(text in ".*") {
            let _ = decode(&text);
        }
    }
}
