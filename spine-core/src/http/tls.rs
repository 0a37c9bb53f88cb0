//! `[http.tls]`: the listener's certificate, for HTTPS with rustls (`ring`
//! as the crypto provider). A file that cannot be read or parsed fails the
//! start, naming the file.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;
use crate::error::Error;

/// The server configuration for `[http.tls]`.
pub(crate) fn server_config(tls: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| {
            Error::config(
                "http.tls.cert_file",
                format!(
                    "cannot read certificates from {}: {e}",
                    tls.cert_file.display()
                ),
            )
        })?;
    if certs.is_empty() {
        return Err(Error::config(
            "http.tls.cert_file",
            format!("{} holds no PEM certificate", tls.cert_file.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| {
        Error::config(
            "http.tls.key_file",
            format!(
                "cannot read a private key from {}: {e}",
                tls.key_file.display()
            ),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config("http.tls", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            Error::config(
                "http.tls.key_file",
                format!("the key does not fit the certificate: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
