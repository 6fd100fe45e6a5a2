//! A string that never shows itself in `Debug`, `Display` or serialised logs.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use url::Url;

/// A secret value (a password, or a URL that may carry one).
///
/// `Debug` and `Display` print `***`; the value is only reachable through
/// [`Secret::expose`], so it cannot end up in a log line by accident.
/// Serialising writes `***` too: a config dumped for diagnostics stays safe.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The wrapped value. Call it only where the value goes to the driver.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecretVisitor)
    }
}

/// Takes a string, or a number as its text (a numeric password is still a
/// password); anything else is refused without echoing it, unlike serde's own
/// "invalid type" messages, which quote the value.
struct SecretVisitor;

impl serde::de::Visitor<'_> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
        Ok(Secret::new(v))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
        Ok(Secret(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Secret, E> {
        Ok(Secret(v.to_string()))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Secret, E> {
        Ok(Secret(v.to_string()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Secret, E> {
        Ok(Secret(v.to_string()))
    }
}

/// One URL, several separated by commas (as `DATABASE_READ_URL` takes them), or a
/// list: serde's own message for a string where a list was expected would quote
/// the URL, password and all.
pub(crate) fn deserialize_secret_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Secret>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a URL or a list of URLs")]
    enum OneOrMany {
        One(Secret),
        Many(Vec<Secret>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(list) => list
            .expose()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Secret::from)
            .collect(),
        OneOrMany::Many(list) => list,
    })
}

/// Query parameters that carry a secret in a connection URL (libpq's names).
const SECRET_PARAMS: [&str; 2] = ["password", "sslpassword"];

/// Whether a URL query parameter carries a secret.
pub(crate) fn is_secret_param(key: &str) -> bool {
    SECRET_PARAMS.iter().any(|p| key.eq_ignore_ascii_case(p))
}

/// A URL fit for a log line: the password, in the user-info part or in the query
/// string, replaced by `***`.
pub(crate) fn redact_url(url: &str) -> String {
    // A SQLite path may be a mistyped server URL (`postgres//app:pw@db`).
    if !url.contains("://") || url.starts_with("sqlite:") || url.starts_with("file:") {
        return redact_text(url);
    }
    let redacted = match Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            if let Some(query) = parsed.query().map(str::to_owned) {
                // Segment by segment, as written: re-encoding the others could hide
                // a password from the text redaction below.
                let redacted: Vec<String> = query
                    .split('&')
                    .map(|segment| match segment.split_once('=') {
                        Some((key, _)) if is_secret_param(key) => format!("{key}=***"),
                        _ => segment.to_owned(),
                    })
                    .collect();
                parsed.set_query(Some(&redacted.join("&")));
            }
            parsed.into()
        }
        Err(_) if !url.contains('@') && !url.contains('?') => url.to_owned(),
        Err(_) => "<unparseable url>".to_owned(),
    };
    redact_text(&redacted)
}

/// `text` with anything that reads like a password hidden: the part after the
/// first `:` of a `user:password@` and the value of a `password=` or
/// `sslpassword=` parameter. A net under the structured redaction, for values
/// that were not where a URL was expected (a URL given as a host, a serde
/// message quoting its input).
pub(crate) fn redact_text(text: &str) -> String {
    let is_boundary = |c: char| c.is_whitespace() || "\"'`/,;([{<>".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut segment_start = 0;
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let absolute = text.len() - rest.len() + at;
        let start = text[..absolute].rfind(is_boundary).map_or(0, |i| {
            i + text[i..].chars().next().map_or(1, char::len_utf8)
        });
        let user_info = &text[start.max(segment_start)..absolute];
        match user_info.find(':') {
            Some(colon) => {
                let colon = start.max(segment_start) + colon;
                out.push_str(&text[segment_start..=colon]);
                out.push_str("***@");
            }
            None => out.push_str(&text[segment_start..=absolute]),
        }
        segment_start = absolute + 1;
        rest = &text[segment_start..];
    }
    out.push_str(&text[segment_start..]);
    redact_password_params(&out)
}

fn redact_password_params(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = lower[from..].find("password=") {
        let value_start = from + found + "password=".len();
        let value_end = text[value_start..]
            .find(|c: char| c == '&' || c.is_whitespace() || "\"'`".contains(c))
            .map_or(text.len(), |i| value_start + i);
        out.push_str(&text[copied..value_start]);
        if value_end > value_start {
            out.push_str("***");
        }
        copied = value_end;
        from = value_end.max(value_start);
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_reads_like_a_password_is_hidden() {
        for (text, expected) in [
            ("postgres://u:pw@h/db", "postgres://u:***@h/db"),
            ("`u:pw@h` is not a host", "`u:***@h` is not a host"),
            ("a@b.db", "a@b.db"),
            ("x?password=pw&y=1", "x?password=***&y=1"),
            (
                "\"p://a:b@c\" and SSLPASSWORD=zz",
                "\"p://a:***@c\" and SSLPASSWORD=***",
            ),
            ("plain", "plain"),
            ("é:ü@ß", "é:***@ß"),
        ] {
            assert_eq!(redact_text(text), expected, "{text}");
        }
    }

    #[test]
    fn never_prints_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
    }
}
