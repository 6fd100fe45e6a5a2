//! PostgreSQL TLS: libpq verifies on its own from the URL; tokio-postgres accepts
//! only `disable|prefer|require` there and leaves verification to the connector,
//! built here once per pool.

use crate::id::PoolKind;
use crate::target::{SslMode, TlsOptions};

/// The `sslmode` a driver of `kind` understands for `mode`.
pub(super) fn url_mode(mode: SslMode, kind: PoolKind) -> &'static str {
    match (mode, kind) {
        (SslMode::Disable, _) => "disable",
        (SslMode::Prefer, _) => "prefer",
        (SslMode::Require, _) => "require",
        // tokio-postgres knows only disable/prefer/require; verification is the connector's job.
        (SslMode::VerifyCa | SslMode::VerifyFull, PoolKind::Async) => "require",
        (SslMode::VerifyCa, PoolKind::Sync) => "verify-ca",
        (SslMode::VerifyFull, PoolKind::Sync) => "verify-full",
    }
}

/// The async pools' TLS connector, when TLS is on. A failure (an unreadable root
/// certificate, say) is kept and reported by every connect, as a failed connect.
pub(super) type Connector = Option<Result<postgres_native_tls::MakeTlsConnector, String>>;

pub(super) fn connector(tls: &TlsOptions) -> Connector {
    match tls.mode {
        None | Some(SslMode::Disable) => None,
        Some(mode) => Some(build(mode, tls.root_cert.as_deref()).map_err(|e| e.to_string())),
    }
}

fn build(
    mode: SslMode,
    root_cert: Option<&str>,
) -> Result<postgres_native_tls::MakeTlsConnector, Box<dyn std::error::Error + Send + Sync>> {
    let mut tls = native_tls::TlsConnector::builder();
    match mode {
        SslMode::VerifyFull => {}
        SslMode::VerifyCa => {
            tls.danger_accept_invalid_hostnames(true);
        }
        SslMode::Disable | SslMode::Prefer | SslMode::Require => {
            tls.danger_accept_invalid_certs(true);
        }
    }
    if let Some(path) = root_cert {
        let pem = std::fs::read(path)?;
        tls.add_root_certificate(native_tls::Certificate::from_pem(&pem)?);
    }
    Ok(postgres_native_tls::MakeTlsConnector::new(tls.build()?))
}
