//! PostgreSQL TLS: libpq verifies on its own from the URL; tokio-postgres accepts
//! only `disable|prefer|require` there and leaves verification to the connector,
//! built here once per pool, which checks what libpq would for the same mode.

use crate::backend::client_cert;
use crate::id::PoolKind;
use crate::target::{SslMode, TlsOptions};

/// The `sslmode` a driver of `kind` understands for `mode`.
pub(super) fn url_mode(mode: SslMode, kind: PoolKind) -> &'static str {
    match (mode, kind) {
        // tokio-postgres knows only disable/prefer/require; verification is the connector's job.
        (SslMode::VerifyCa | SslMode::VerifyFull, PoolKind::Async) => "require",
        (mode, _) => mode.as_str(),
    }
}

/// The async pools' TLS connector, when TLS is on. A failure (a certificate that
/// no longer reads, say) is kept and reported by every connect, as a failed connect.
pub(super) type Connector = Option<Result<postgres_native_tls::MakeTlsConnector, String>>;

pub(super) fn connector(tls: &TlsOptions) -> Connector {
    match tls.mode {
        SslMode::Disable => None,
        _ => Some(build(tls)),
    }
}

fn build(tls: &TlsOptions) -> Result<postgres_native_tls::MakeTlsConnector, String> {
    let mut builder = native_tls::TlsConnector::builder();
    match (tls.mode, tls.verifies_chain()) {
        (SslMode::VerifyFull, _) => {}
        (_, true) => {
            builder.danger_accept_invalid_hostnames(true);
        }
        (_, false) => {
            builder.danger_accept_invalid_certs(true);
        }
    }
    if let Some(path) = &tls.root_cert {
        let pem = std::fs::read(path).map_err(|e| format!("root certificate `{path}`: {e}"))?;
        let roots = native_tls::Certificate::stack_from_pem(&pem)
            .map_err(|e| format!("root certificate `{path}`: {e}"))?;
        for root in roots {
            builder.add_root_certificate(root);
        }
        // As libpq: the root certificate given is the only one trusted.
        builder.disable_built_in_roots(true);
    }
    if let Some(client) = &tls.client {
        let archive = client_cert::pkcs12(client).map_err(|e| e.to_string())?;
        let identity = native_tls::Identity::from_pkcs12(&archive, "")
            .map_err(|e| format!("client certificate `{}`: {e}", client.cert))?;
        builder.identity(identity);
    }
    let connector = builder.build().map_err(|e| e.to_string())?;
    Ok(postgres_native_tls::MakeTlsConnector::new(connector))
}
