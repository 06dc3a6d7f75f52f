//! TLS for tests: certificates made at test time (rcgen) and written to a
//! temporary directory, a rustls client trusting them, and a server config
//! that listens for TLS on port 0.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use conveyor::config::Config;
use conveyor::tls::CertificateFiles;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::{temp_dir, TestServer};

pub(crate) type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// Certificates written to a temporary directory, removed on drop.
pub(crate) struct Pki {
    pub(crate) dir: PathBuf,
    /// One per `make` call, in order.
    pub(crate) files: Vec<CertificateFiles>,
    pub(crate) ders: Vec<CertificateDer<'static>>,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        Pki {
            dir: temp_dir("tls-pki"),
            files: Vec::new(),
            ders: Vec::new(),
        }
    }

    /// A self-signed certificate for `subject_names`, served for `sni`
    /// (empty: the default certificate).
    pub(crate) fn make(&mut self, subject_names: &[&str], sni: &[&str]) -> CertificateFiles {
        let stem = format!("cert{}", self.files.len());
        let (mut files, der) = write_certificate(&self.dir, &stem, subject_names);
        files.names = sni.iter().map(|s| s.to_string()).collect();
        self.files.push(files.clone());
        self.ders.push(der);
        files
    }
}

/// A self-signed certificate for `subject_names`, made now, written to
/// `dir` as `STEM.pem` and `STEM.key`: the files (served as the default
/// certificate) and the certificate itself, for a client to trust.
fn write_certificate(
    dir: &Path,
    stem: &str,
    subject_names: &[&str],
) -> (CertificateFiles, CertificateDer<'static>) {
    let names: Vec<String> = subject_names.iter().map(|s| s.to_string()).collect();
    let made = rcgen::generate_simple_self_signed(names).expect("rcgen");
    let cert = dir.join(format!("{stem}.pem"));
    let key = dir.join(format!("{stem}.key"));
    std::fs::write(&cert, made.cert.pem()).expect("write cert");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key");
    let files = CertificateFiles {
        cert,
        key,
        names: Vec::new(),
    };
    (files, made.cert.der().clone())
}

/// A self-signed certificate for `localhost` written into `dir`: the
/// default certificate of a TLS listener.
pub(crate) fn localhost_certificate(dir: &Path) -> CertificateFiles {
    write_certificate(dir, "localhost", &["localhost"]).0
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client trusting `roots`, offering `versions` and ALPN `http/1.1`.
pub(crate) fn client(
    roots: &[CertificateDer<'static>],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).expect("root");
    }
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(store)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

pub(crate) const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Connects and completes the handshake (panics if it fails).
pub(crate) fn connect(addr: SocketAddr, config: &Arc<ClientConfig>, name: &str) -> TlsStream {
    try_connect(addr, config, name).expect("TLS handshake")
}

pub(crate) fn try_connect(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    name: &str,
) -> Result<TlsStream, std::io::Error> {
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    sock.set_nodelay(true).expect("nodelay");
    handshake(sock, config, name)
}

/// Completes a TLS handshake for `name` over the connected `sock`.
pub(crate) fn handshake(
    sock: TcpStream,
    config: &Arc<ClientConfig>,
    name: &str,
) -> Result<TlsStream, std::io::Error> {
    let name = ServerName::try_from(name.to_string()).expect("server name");
    let conn = ClientConnection::new(config.clone(), name).expect("client");
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// TLS on port 0 with `pki`'s certificates, on top of the test defaults.
pub(crate) fn with_tls(config: &mut Config, pki: &Pki) {
    config.tls.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    config.tls.certificates = pki.files.clone();
}

pub(crate) fn tls_addr(server: &TestServer) -> SocketAddr {
    server.server().tls_addrs()[0]
}

pub(crate) fn localhost_pki() -> Pki {
    let mut pki = Pki::new();
    pki.make(&["localhost"], &[]);
    pki
}
