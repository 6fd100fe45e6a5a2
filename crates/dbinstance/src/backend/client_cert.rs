//! A client certificate and its key (PEM files) as the PKCS#12 archive that the
//! native-tls connectors take: mysql_async accepts nothing else, and an archive
//! takes the key in either PEM form (PKCS#8 or the older RSA one). The plan makes
//! one at build too, so that a bad file is an error naming its setting.

use crate::target::ClientCert;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::PKey;
use openssl::stack::Stack;
use openssl::x509::X509;

/// What is wrong with the client certificate: the setting to blame, and why.
#[derive(Debug)]
pub(crate) struct BadClientCert {
    pub(crate) field: &'static str,
    pub(crate) reason: String,
}

impl std::fmt::Display for BadClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// The archive, with an empty password; a chain after the leaf goes along.
pub(crate) fn pkcs12(client: &ClientCert) -> Result<Vec<u8>, BadClientCert> {
    let bad = |field, path: &str, e: &dyn std::fmt::Display| BadClientCert {
        field,
        reason: format!("`{path}`: {e}"),
    };
    let read = |field, path: &str| std::fs::read(path).map_err(|e| bad(field, path, &e));
    let mut chain = X509::stack_from_pem(&read("ssl_cert", &client.cert)?)
        .map_err(|e| bad("ssl_cert", &client.cert, &e))?
        .into_iter();
    let leaf = chain
        .next()
        .ok_or_else(|| bad("ssl_cert", &client.cert, &"holds no certificate"))?;
    let key = PKey::private_key_from_pem(&read("ssl_key", &client.key)?)
        .map_err(|e| bad("ssl_key", &client.key, &e))?;
    let mut builder = Pkcs12::builder();
    builder.pkey(&key).cert(&leaf);
    let rest: Vec<X509> = chain.collect();
    if !rest.is_empty() {
        let mut stack = Stack::new().map_err(|e| bad("ssl_cert", &client.cert, &e))?;
        for cert in rest {
            stack
                .push(cert)
                .map_err(|e| bad("ssl_cert", &client.cert, &e))?;
        }
        builder.ca(stack);
    }
    // Fails when the key is not the certificate's.
    builder
        .build2("")
        .and_then(|p| p.to_der())
        .map_err(|e| bad("ssl_key", &client.key, &e))
}
