//! mysql_async's TLS, built once per async pool: the same checks as every other
//! driver makes for each mode, with native-tls.

use crate::backend::client_cert;
use crate::target::{SslMode, TlsOptions};
use mysql_async::{ClientIdentity, SslOpts};
use std::path::PathBuf;

/// What an async pool connects with: no TLS, TLS with these options, or the
/// reason they could not be built (reported by every connect).
#[derive(Clone)]
pub(super) enum AsyncTls {
    Off,
    On {
        opts: SslOpts,
        /// `prefer`: a server without TLS is connected to in clear text.
        fallback: bool,
    },
    Broken(String),
}

impl std::fmt::Debug for AsyncTls {
    // The options hold the client's private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AsyncTls::Off => "Off",
            AsyncTls::On { .. } => "On",
            AsyncTls::Broken(_) => "Broken",
        })
    }
}

pub(super) fn async_tls(tls: &TlsOptions) -> AsyncTls {
    if tls.mode == SslMode::Disable {
        return AsyncTls::Off;
    }
    match ssl_opts(tls) {
        Ok(opts) => AsyncTls::On {
            opts,
            fallback: tls.mode == SslMode::Prefer,
        },
        Err(message) => AsyncTls::Broken(message),
    }
}

fn ssl_opts(tls: &TlsOptions) -> Result<SslOpts, String> {
    let mut opts = SslOpts::default();
    opts = match (tls.mode, tls.verifies_chain()) {
        (SslMode::VerifyFull, _) => opts,
        (_, true) => opts.with_danger_skip_domain_validation(true),
        (_, false) => opts
            .with_danger_accept_invalid_certs(true)
            .with_danger_skip_domain_validation(true),
    };
    if let Some(root) = &tls.root_cert {
        // As libpq: the root certificate given is the only one trusted.
        opts = opts
            .with_root_certs(vec![PathBuf::from(root).into()])
            .with_disable_built_in_roots(true);
    }
    if let Some(client) = &tls.client {
        let archive = client_cert::pkcs12(client).map_err(|e| e.to_string())?;
        opts = opts.with_client_identity(Some(ClientIdentity::new(archive.into())));
    }
    Ok(opts)
}
