//! MySQL connection strings: TLS parameters for libmysqlclient. mysql_async is
//! built without a TLS backend by diesel-async, so the async pools get none.

use crate::backend::query::Query;
use crate::id::PoolKind;
use crate::secret::Secret;
use crate::target::{ConnectOptions, SslMode};
use url::Url;

/// The string libmysqlclient (`Sync`) or mysql_async (`Async`) gets.
pub(super) fn connection_string(url: &Url, kind: PoolKind, options: &ConnectOptions) -> Secret {
    let mut query = Query::of(url);
    if let (Some(mode), PoolKind::Sync, false) = (options.tls.mode, kind, query.has("ssl_mode")) {
        query.extra.push(("ssl_mode", ssl_mode(mode).to_owned()));
        if let Some(cert) = &options.tls.root_cert {
            query.extra.push(("ssl_ca", cert.clone()));
        }
    }
    Secret::new(String::from(query.apply(url.clone())))
}

fn ssl_mode(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "DISABLED",
        SslMode::Prefer => "PREFERRED",
        SslMode::Require => "REQUIRED",
        SslMode::VerifyCa => "VERIFY_CA",
        SslMode::VerifyFull => "VERIFY_IDENTITY",
    }
}
