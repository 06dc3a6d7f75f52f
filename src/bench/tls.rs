//! `https://` targets: the certificates the client trusts (`--cacert`,
//! the system's bundle, or none with `-k`), the rustls client settings,
//! and the client's rustls connection as the runtime's record layer (the
//! library's `TlsSession`, which serves both sides), so a TLS connection
//! is a `conveyor::runtime::Stream` like a plain one.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use conveyor::runtime::{Stream, TcpStream};
use conveyor::tls::TlsSession;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring as provider, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore};

/// How an `https://` target's certificate is checked.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Trust {
    /// Verified against these CA certificates (`--cacert`, or the system's).
    Roots(Vec<CertificateDer<'static>>),
    /// Not verified (`-k`/`--insecure`): any certificate is accepted, its
    /// handshake signature still checked.
    Insecure,
}

/// Where distributions keep the CA bundle, when `SSL_CERT_FILE` is unset.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The CA certificates in `file` (PEM); an error names the file and what
/// is wrong with it.
pub(crate) fn read_roots(file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(file)
        .map_err(|e| format!("--cacert {}: cannot read it ({e})", file.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--cacert {}: not valid PEM ({e})", file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--cacert {}: no PEM certificate in it (\"-----BEGIN CERTIFICATE-----\")",
            file.display()
        ));
    }
    Ok(certs)
}

/// The system's CA certificates: `SSL_CERT_FILE`, else the first bundle of
/// [`SYSTEM_BUNDLES`] that exists.
pub(crate) fn system_roots() -> Result<Vec<CertificateDer<'static>>, String> {
    let file = match std::env::var_os("SSL_CERT_FILE") {
        Some(file) => PathBuf::from(file),
        None => SYSTEM_BUNDLES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format!(
                    "https:// verifies the server's certificate, and no system CA bundle \
                     was found ({}); give --cacert FILE to trust a CA, or -k to accept \
                     the certificate unverified",
                    SYSTEM_BUNDLES.join(", ")
                )
            })?,
    };
    read_roots(&file).map_err(|e| e.replacen("--cacert", "the system CA bundle", 1))
}

/// What every TLS connection of a run is made with.
#[derive(Clone)]
pub(crate) struct Client {
    config: Arc<ClientConfig>,
    /// The name the certificate must hold, sent by SNI (an IP address is
    /// checked but not sent).
    name: ServerName<'static>,
}

impl Client {
    /// Settings for `host` (`HOST[:PORT]` of the URL) under `trust`,
    /// offering `h2` alone by ALPN, or `http/1.1` alone.
    pub(crate) fn new(trust: &Trust, host: &str, h2: bool) -> Result<Client, String> {
        let provider = Arc::new(provider::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS versions: {e}"))?;
        let mut config = match trust {
            Trust::Roots(certs) => {
                let mut roots = RootCertStore::empty();
                let (added, _ignored) = roots.add_parsable_certificates(certs.iter().cloned());
                if added == 0 {
                    return Err("none of the CA certificates is usable".into());
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth(),
        };
        config.alpn_protocols = vec![match h2 {
            true => b"h2".to_vec(),
            false => b"http/1.1".to_vec(),
        }];
        let bare = host_name(host);
        let name = ServerName::try_from(bare.to_string())
            .map_err(|_| format!("{bare} is not a name a certificate can hold"))?;
        Ok(Client {
            config: Arc::new(config),
            name,
        })
    }

    fn connection(&self) -> io::Result<ClientConnection> {
        ClientConnection::new(self.config.clone(), self.name.clone())
            .map_err(|e| io::Error::other(format!("cannot start a TLS session: {e}")))
    }

    /// Runs the handshake on `socket`: the secure stream, and whether the
    /// server chose `h2` by ALPN.
    pub(crate) async fn handshake(&self, socket: TcpStream) -> io::Result<(Stream, bool)> {
        let mut tls = self.connection()?;
        loop {
            while tls.wants_write() {
                socket.write_with(|mut s| tls.write_tls(&mut s)).await?;
            }
            if !tls.is_handshaking() {
                break;
            }
            if socket.read_with(|mut s| tls.read_tls(&mut s)).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if let Err(e) = tls.process_new_packets() {
                // The alert rustls queued, if the socket takes it at once.
                let _ = tls.write_tls(&mut socket.get_ref());
                let hint = match e {
                    rustls::Error::InvalidCertificate(_) => {
                        " (trust its CA with --cacert FILE, or accept it unverified with -k)"
                    }
                    _ => "",
                };
                return Err(io::Error::other(format!("TLS handshake: {e}{hint}")));
            }
        }
        let h2 = tls.alpn_protocol() == Some(b"h2");
        let mut stream = Stream::plain(socket);
        stream.secure(Box::new(std::cell::RefCell::new(TlsSession(tls.into()))));
        Ok((stream, h2))
    }

    /// A blocking TLS stream over `socket` (the `--server-status` thread);
    /// the handshake runs with the first read or write.
    pub(crate) fn blocking(
        &self,
        socket: std::net::TcpStream,
    ) -> io::Result<rustls::StreamOwned<ClientConnection, std::net::TcpStream>> {
        Ok(rustls::StreamOwned::new(self.connection()?, socket))
    }
}

/// `HOST` of `HOST[:PORT]`, an IPv6 literal without its brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(ip, _)| ip);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// `-k`: every certificate is accepted; the handshake's signatures are
/// still checked, so the session is with the holder of the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_their_port_and_brackets() {
        assert_eq!(host_name("localhost:8443"), "localhost");
        assert_eq!(host_name("example.com"), "example.com");
        assert_eq!(host_name("[::1]:8443"), "::1");
        assert_eq!(host_name("127.0.0.1:1"), "127.0.0.1");
    }

    #[test]
    fn a_cacert_without_certificates_is_named_in_the_error() {
        let dir = std::env::temp_dir().join(format!("bench-cacert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("empty.pem");
        std::fs::write(&file, "not a certificate\n").expect("write");
        let err = read_roots(&file).expect_err("no certificate");
        assert!(err.contains("no PEM certificate"), "{err}");
        let missing = read_roots(&dir.join("missing.pem")).expect_err("missing");
        assert!(missing.contains("cannot read it"), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
