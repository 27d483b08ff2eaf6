//! Key-Value form: one `key:value\n` line per field, UTF-8, no spaces around the colon, every
//! line terminated (the last one too).

/// Why a Key-Value body or field was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    #[error("line {0} has no colon")]
    NoColon(usize),
    #[error("line {0} is not terminated by a newline")]
    Unterminated(usize),
    #[error("a key is empty or contains a colon or a newline")]
    BadKey,
    #[error("a value contains a newline")]
    BadValue,
    #[error("the key {0} appears twice")]
    Repeated(String),
}

/// Writes `pairs` in Key-Value form. Keys may not be empty or contain `:` or `\n`; values may
/// not contain `\n`.
pub fn kv_emit<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Result<String, KvError> {
    let mut out = String::new();
    for (key, value) in pairs {
        let (key, value) = (key.as_ref(), value.as_ref());
        if key.is_empty() || key.contains([':', '\n']) {
            return Err(KvError::BadKey);
        }
        if value.contains('\n') {
            return Err(KvError::BadValue);
        }
        out.push_str(key);
        out.push(':');
        out.push_str(value);
        out.push('\n');
    }
    Ok(out)
}

/// Reads a Key-Value body strictly: every line `key:value\n` (the value may contain further
/// colons), no empty keys, no key twice. An empty body is an empty message.
pub fn kv_parse(text: &str) -> Result<Vec<(String, String)>, KvError> {
    let mut out: Vec<(String, String)> = Vec::new();
    if text.is_empty() {
        return Ok(out);
    }
    let lines: Vec<&str> = text.split('\n').collect();
    let last = lines.len() - 1;
    for (index, line) in lines.iter().enumerate() {
        if index == last {
            if line.is_empty() {
                break;
            }
            return Err(KvError::Unterminated(index + 1));
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(KvError::NoColon(index + 1));
        };
        if key.is_empty() {
            return Err(KvError::BadKey);
        }
        if out.iter().any(|(k, _)| k == key) {
            return Err(KvError::Repeated(key.to_owned()));
        }
        out.push((key.to_owned(), value.to_owned()));
    }
    Ok(out)
}
