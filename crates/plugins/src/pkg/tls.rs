//! TLS client settings from a plugin's `tls [CERT KEY CA]` (`forward`'s `tls://` upstreams,
//! `etcd`; CoreDNS's `plugin/pkg/tls`).

use kdns_corefile::{Error, Token};
use std::sync::Arc;

/// `tls [CERT KEY CA]`: no files → system roots; `CA` → that CA; `CERT KEY` → client cert with
/// system roots; `CERT KEY CA` → both. TLS 1.2 minimum.
pub fn client_config(
    plugin: &str,
    files: Option<(&Token, &[&Token])>,
    dir: &std::path::Path,
    at: &Token,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let path =
        |t: &Token| if std::path::Path::new(&t.text).is_absolute() { t.text.clone().into() } else { dir.join(&t.text) };
    let load_certs = |t: &Token| -> Result<Vec<CertificateDer<'static>>, Error> {
        let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path(t))
            .map_err(|e| Error::at(t, format!("plugin/{plugin}: cannot read {:?}: {e}", t.text)))?
            .collect();
        certs.map_err(|e| Error::at(t, format!("plugin/{plugin}: bad certificate in {:?}: {e}", t.text)))
    };
    let vals: &[&Token] = files.map_or(&[], |(_, v)| v);
    let (client, ca) = match vals {
        [] => (None, None),
        [ca] => (None, Some(*ca)),
        [cert, key] => (Some((*cert, *key)), None),
        [cert, key, ca] => (Some((*cert, *key)), Some(*ca)),
        _ => {
            return Err(Error::at(
                files.map_or(at, |(p, _)| p),
                format!("plugin/{plugin}: tls takes at most CERT KEY CA"),
            ))
        }
    };
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(ca) => {
            for c in load_certs(ca)? {
                roots.add(c).map_err(|e| Error::at(ca, format!("plugin/{plugin}: bad CA certificate: {e}")))?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::at(at, format!("plugin/{plugin}: tls: {e}")))?
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let key = PrivateKeyDer::from_pem_file(path(key))
                .map_err(|e| Error::at(key, format!("plugin/{plugin}: cannot read key {:?}: {e}", key.text)))?;
            builder
                .with_client_auth_cert(load_certs(cert)?, key)
                .map_err(|e| Error::at(cert, format!("plugin/{plugin}: tls client certificate: {e}")))?
        }
    };
    Ok(Arc::new(config))
}
