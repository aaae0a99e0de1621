//! TLS to PostgreSQL (`sslmode=require` / `verify-ca` / `verify-full`) with rustls. The
//! server certificate is always verified, against `sslrootcert=` when given, else against the
//! system's roots; flowlog never connects with an unverified certificate.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::{Result, StoreError};

pub fn connector(root_cert: Option<&str>) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect::<std::result::Result<_, _>>())
                .map_err(|e| {
                    StoreError::Config(format!(
                        "cannot read the CA certificates in sslrootcert={path}: {e}; give a PEM file"
                    ))
                })?;
            if certs.is_empty() {
                return Err(StoreError::Config(format!(
                    "sslrootcert={path} holds no PEM certificate"
                )));
            }
            for c in certs {
                roots.add(c).map_err(|e| {
                    StoreError::Config(format!("sslrootcert={path}: bad certificate: {e}"))
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(StoreError::Config(
                    "sslmode needs TLS but no system CA certificate was found: add sslrootcert=/path/ca.pem to the store URL".into(),
                ));
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StoreError::Config(format!("TLS setup: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}
