//! TLS to the PostgreSQL server, with rustls: libpq's `sslmode` and `sslrootcert`, which the
//! `postgres` crate's connection-string parser does not know (it has no `verify-ca` nor
//! `verify-full`, and no `sslrootcert`), so they are taken out of `postgres-url` here first.
//!
//! The modes mean what they mean to libpq: `disable` speaks plain text; `prefer` (the default)
//! encrypts when the server offers it, `require` always, neither checking the certificate (as
//! libpq; `require` with `sslrootcert` checks it like `verify-ca`); `verify-ca` checks that a
//! certificate authority of `sslrootcert` signed the server's certificate; `verify-full` also that
//! the certificate names the host connected to. A certificate error reads like `invalid peer
//! certificate: UnknownIssuer` after the server's name (see `describe` in `postgres/connect.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::config::SslMode as ClientSslMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error as TlsError, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// What `postgres-url` says about TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
}

/// `url` without `sslmode` and `sslrootcert`, and what they said. Both forms of libpq's
/// connection string: `key=value` words (values unquoted, or in single quotes with `\` escapes)
/// and `postgresql://` URLs (the keys in the query).
pub fn split(url: &str) -> Result<(String, TlsOptions), String> {
    let mut mode = None;
    let mut root_cert = None;
    let mut take = |key: &str, value: String| -> Result<bool, String> {
        match key {
            "sslmode" => {
                mode = Some(match value.as_str() {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode {other:?} is not one of disable, prefer, require, verify-ca, \
                             verify-full"
                        ))
                    }
                });
                Ok(true)
            }
            "sslrootcert" => {
                root_cert = Some(PathBuf::from(value));
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&') {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(k, percent_decode(v)?)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for (key, value, text) in words(url)? {
            if !take(key, value)? {
                kept.push(text);
            }
        }
        kept.join(" ")
    };
    let opts = TlsOptions {
        mode: mode.unwrap_or(SslMode::Prefer),
        root_cert,
    };
    if matches!(opts.mode, SslMode::VerifyCa | SslMode::VerifyFull) && opts.root_cert.is_none() {
        return Err(
            "sslmode verify-ca and verify-full need sslrootcert: the certificate authorities to \
             trust (a PEM file)"
                .into(),
        );
    }
    Ok((rest, opts))
}

/// The `key=value` words of a connection string: key, unquoted value, and the word's text.
fn words(s: &str) -> Result<Vec<(&str, String, &str)>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let start = rest;
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("{:?} is not key=value", rest.split_whitespace().next()))?;
        let key = rest[..eq].trim_end();
        rest = rest[eq + 1..].trim_start();
        let mut value = String::new();
        if let Some(quoted) = rest.strip_prefix('\'') {
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, c)) => value.push(c),
                        None => return Err("a quoted value is not closed".into()),
                    },
                    Some((i, '\'')) => break i + 1,
                    Some((_, c)) => value.push(c),
                    None => return Err("a quoted value is not closed".into()),
                }
            };
            rest = &quoted[end..];
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            value.push_str(&rest[..end]);
            rest = &rest[end..];
        }
        let text = &start[..start.len() - rest.len()];
        out.push((key, value, text));
        rest = rest.trim_start();
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// The `postgres` crate's mode for `mode` (verification is the connector's).
pub fn ssl_mode(mode: SslMode) -> ClientSslMode {
    match mode {
        SslMode::Disable => ClientSslMode::Disable,
        SslMode::Prefer => ClientSslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => ClientSslMode::Require,
    }
}

/// The connector for `opts`: `None` for plain text (`disable`).
pub fn connector(opts: &TlsOptions) -> Result<Option<MakeRustlsConnect>, String> {
    if opts.mode == SslMode::Disable {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verify = match (&opts.root_cert, opts.mode) {
        (None, _) => Verify::Anything,
        (Some(_), SslMode::VerifyFull) => Verify::Full,
        // libpq: a root certificate given with require checks the authority, not the name.
        (Some(_), _) => Verify::Authority,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (verify, &opts.root_cert) {
        (Verify::Anything, _) | (_, None) => Arc::new(Unverified(provider.clone())),
        (verify, Some(file)) => {
            let roots = root_store(file)?;
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| format!("sslrootcert {}: {e}", file.display()))?;
            if verify == Verify::Full {
                webpki
            } else {
                Arc::new(AnyName(webpki))
            }
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(config)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verify {
    Anything,
    Authority,
    Full,
}

fn root_store(file: &Path) -> Result<Arc<rustls::RootCertStore>, String> {
    let at = |e: &dyn std::fmt::Display| format!("sslrootcert {}: {e}", file.display());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(file).map_err(|e| at(&e))? {
        roots.add(cert.map_err(|e| at(&e))?).map_err(|e| at(&e))?;
    }
    if roots.is_empty() {
        return Err(at(&"no certificate in the file"));
    }
    Ok(Arc::new(roots))
}

/// `prefer` and `require` without `sslrootcert`: encrypted, the certificate not checked (as libpq);
/// the handshake's signatures still are.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

/// `verify-ca`: the chain checked, the name not.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_keys_are_taken_out_of_both_forms() {
        let (rest, o) =
            split("host=db1 sslmode=verify-full dbname='a b\\'c' sslrootcert='/etc/ca 1.pem'")
                .unwrap();
        assert_eq!(rest, "host=db1 dbname='a b\\'c'");
        assert_eq!(o.mode, SslMode::VerifyFull);
        assert_eq!(o.root_cert.as_deref(), Some(Path::new("/etc/ca 1.pem")));
        let (rest, o) =
            split("postgresql://u@db1/x?sslmode=require&application_name=a&sslrootcert=%2Fca.pem")
                .unwrap();
        assert_eq!(rest, "postgresql://u@db1/x?application_name=a");
        assert_eq!(o.mode, SslMode::Require);
        assert_eq!(o.root_cert.as_deref(), Some(Path::new("/ca.pem")));
        let (rest, o) = split("host=/run/postgresql dbname=x").unwrap();
        assert_eq!(
            (rest.as_str(), o.mode),
            ("host=/run/postgresql dbname=x", SslMode::Prefer)
        );
        assert!(split("host=a sslmode=verify-full")
            .unwrap_err()
            .contains("sslrootcert"));
        assert!(split("host=a sslmode=bogus").unwrap_err().contains("bogus"));
        assert!(split("host=a dbname='x").is_err());
    }
}
