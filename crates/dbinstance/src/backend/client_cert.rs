//! A client certificate and its key (PEM files) as the PKCS#12 archive that the
//! native-tls connectors take: mysql_async accepts nothing else, and an archive
//! takes the key in either PEM form (PKCS#8 or the older RSA one).

use crate::target::ClientCert;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::PKey;
use openssl::stack::Stack;
use openssl::x509::X509;

/// The archive, with an empty password; a chain after the leaf goes along.
pub(crate) fn pkcs12(client: &ClientCert) -> Result<Vec<u8>, String> {
    let read = |path: &str| {
        std::fs::read(path).map_err(|e| format!("client certificate file `{path}`: {e}"))
    };
    let mut chain = X509::stack_from_pem(&read(&client.cert)?)
        .map_err(|e| format!("client certificate `{}`: {e}", client.cert))?
        .into_iter();
    let leaf = chain
        .next()
        .ok_or_else(|| format!("client certificate `{}` holds no certificate", client.cert))?;
    let key = PKey::private_key_from_pem(&read(&client.key)?)
        .map_err(|e| format!("client key `{}`: {e}", client.key))?;
    let mut builder = Pkcs12::builder();
    builder.pkey(&key).cert(&leaf);
    let rest: Vec<X509> = chain.collect();
    if !rest.is_empty() {
        let mut stack = Stack::new().map_err(|e| e.to_string())?;
        for cert in rest {
            stack.push(cert).map_err(|e| e.to_string())?;
        }
        builder.ca(stack);
    }
    let archive = builder
        .build2("")
        .and_then(|p| p.to_der())
        .map_err(|e| format!("client certificate `{}` and key: {e}", client.cert))?;
    Ok(archive)
}
