//! A server URL's query string, to which a driver adds its parameters.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use url::Url;

/// Everything but unreserved characters is escaped in query values.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A URL's query parameters, to which a driver adds its own.
pub(crate) struct Query {
    pub(crate) existing: Vec<(String, String)>,
    pub(crate) extra: Vec<(&'static str, String)>,
}

impl Query {
    pub(crate) fn of(url: &Url) -> Self {
        Self {
            existing: url
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            extra: Vec::new(),
        }
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.existing
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key`, replacing any value the URL gave it.
    #[cfg(feature = "postgres")]
    pub(crate) fn replace(&mut self, key: &'static str, value: String) {
        self.existing.retain(|(k, _)| k != key);
        self.extra.push((key, value));
    }

    /// `url` with the added parameters.
    pub(crate) fn apply(self, mut url: Url) -> Url {
        if !self.extra.is_empty() {
            // Encoded by hand: `url` writes spaces as `+`, which libpq reads literally.
            let encode = |v: &str| utf8_percent_encode(v, QUERY_VALUE).to_string();
            let query: Vec<String> = self
                .existing
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .chain(self.extra.iter().map(|(k, v)| (*k, v.as_str())))
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            url.set_query(Some(&query.join("&")));
        }
        url
    }
}
