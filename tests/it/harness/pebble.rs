//! Pebble, Let's Encrypt's ACME test server, started for one test: a real
//! CA that really validates the challenges (no `PEBBLE_VA_ALWAYS_VALID`).
//!
//! What Debian's pebble 2.4.0 (`apt-get install pebble`; binaries `pebble`
//! and `pebble-challtestsrv`, no config or certificates shipped) supports,
//! as found by running it:
//! - **Flags**: `-config FILE`, `-dnsserver HOST:PORT`, `-strict` (off by
//!   default; `conveyor::acme` passes the tests with it on too). Config keys (`{"pebble": {...}}`): `listenAddress`,
//!   `managementListenAddress`, `certificate`, `privateKey` (its own
//!   HTTPS; the test writes both), `httpPort`, `tlsPort` (where the VA
//!   connects for http-01 and tls-alpn-01: the server under test listens
//!   there), `ocspResponderURL`, `externalAccountBindingRequired`,
//!   `externalAccountMACKeys`, `domainBlocklist`, and
//!   **`certificateValidityPeriod`** (seconds; pebble logs "Using
//!   certificate validity period of N seconds"): short-lived certificates
//!   for renewal tests ([`PebbleOptions::validity`]). No profiles.
//! - **No ARI**: the directory has `newNonce`, `newAccount`, `newOrder`,
//!   `revokeCert`, `keyChange`, `meta` and no `renewalInfo` (RFC 9773
//!   came to pebble after 2.4), so against it a client renews at 2/3 of
//!   the lifetime and `AcmeClient::renewal_window` is `None`.
//! - **Environment**: `PEBBLE_VA_NOSLEEP=1` (set here: no random 0-15 s
//!   sleep before validating), `PEBBLE_VA_SLEEPTIME`, `PEBBLE_VA_ALWAYS_VALID`
//!   (never set here), `PEBBLE_WFE_NONCEREJECT` (percent of good nonces
//!   refused as `badNonce`; pebble's default 5,
//!   [`PebbleOptions::nonce_reject`]), `PEBBLE_AUTHZREUSE` (percent of
//!   valid authorizations reused by a new order; default 50: a second
//!   order may need no challenge at all), `PEBBLE_CHAIN_LENGTH` (default 1:
//!   leaf + one intermediate), `PEBBLE_ALTERNATE_ROOTS`,
//!   `PEBBLE_WFE_ORDERS_PER_PAGE`.
//! - **Management interface** (HTTPS, same certificate): `/roots/0` and
//!   `/intermediates/0` (PEM; made anew at every start),
//!   `/root-keys/0`, `/cert-status-by-serial/<hex>`.
//! - **Names**: pebble resolves identifiers with `-dnsserver`; here that is
//!   `pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 ""`, so any
//!   name (`a.acme.test`) validates against 127.0.0.1.
//!
//! A CA that stalls: [`Pebble::pause`] (SIGSTOP) and [`Pebble::resume`];
//! one that is down: [`Pebble::stop`].
//!
//! Every port is chosen free at run time (other tests and other checkouts
//! run pebble at once); `http_port` and `tls_port` are the caller's, since
//! the server under test must listen there. Both processes are killed by
//! PID on drop.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::needs::{find_all, Tool};
use super::temp_dir;

pub(crate) const PEBBLE: Tool = Tool {
    name: "pebble",
    package: "pebble",
};
pub(crate) const CHALLTESTSRV: Tool = Tool {
    name: "pebble-challtestsrv",
    package: "pebble",
};

/// The longest pebble may take to start listening.
const START_LIMIT: Duration = Duration::from_secs(20);

/// How to run pebble.
#[derive(Clone, Debug)]
pub(crate) struct PebbleOptions {
    /// Where pebble's VA connects for http-01.
    pub(crate) http_port: u16,
    /// Where pebble's VA connects for tls-alpn-01.
    pub(crate) tls_port: u16,
    /// `certificateValidityPeriod`: the lifetime of issued certificates
    /// (pebble's default: five years).
    pub(crate) validity: Option<Duration>,
    /// `PEBBLE_WFE_NONCEREJECT`: percent of good nonces refused.
    pub(crate) nonce_reject: u8,
    /// More environment for pebble (e.g. `PEBBLE_AUTHZREUSE`).
    pub(crate) env: Vec<(String, String)>,
}

impl PebbleOptions {
    pub(crate) fn new(http_port: u16, tls_port: u16) -> PebbleOptions {
        PebbleOptions {
            http_port,
            tls_port,
            validity: None,
            nonce_reject: 5,
            env: Vec::new(),
        }
    }
}

/// A running pebble and its DNS, stopped on drop.
pub(crate) struct Pebble {
    /// The ACME directory URL (`https://127.0.0.1:PORT/dir`).
    pub(crate) directory: String,
    /// The CA bundle for pebble's own HTTPS (`acme.ca_file`).
    pub(crate) ca_file: PathBuf,
    /// The management interface (`/roots/0`, `/intermediates/0`).
    pub(crate) management: SocketAddr,
    /// The temporary directory holding the config and the certificate.
    pub(crate) dir: PathBuf,
    pebble: Child,
    dns: Child,
    log: Arc<Mutex<Vec<String>>>,
}

/// A port free now on 127.0.0.1 for TCP and UDP (the DNS server takes
/// both), chosen below the kernel's ephemeral range: a port the kernel
/// handed out for `:0` can be taken by any other test's outgoing
/// connection before pebble or the server binds it again.
pub(crate) fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let first = 10_000u32;
    let span = low.saturating_sub(first).max(1);
    // Each test process starts elsewhere, then walks the range.
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..span {
        let port = first + (seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % span);
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        let tcp = TcpListener::bind(("127.0.0.1", port));
        let udp = UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    panic!("no free port below {low} on 127.0.0.1")
}

/// Whether something accepts TCP connections on `addr`.
fn listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

fn collect(stream: impl Read + Send + 'static, tag: &'static str, log: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            log.lock().expect("log").push(format!("{tag}: {line}"));
        }
    });
}

fn spawn(mut command: Command, tag: &'static str, log: &Arc<Mutex<Vec<String>>>) -> Child {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {tag}: {e}"));
    collect(child.stdout.take().expect("stdout"), tag, log.clone());
    collect(child.stderr.take().expect("stderr"), tag, log.clone());
    child
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

impl Pebble {
    /// Starts pebble-challtestsrv (DNS: every name is 127.0.0.1) and pebble
    /// on free ports; `None` if pebble is not installed (after
    /// `needs::missing`: a skip locally, a failure under CI=true).
    pub(crate) fn start(options: &PebbleOptions) -> Option<Pebble> {
        let [pebble, challtestsrv] = find_all([&PEBBLE, &CHALLTESTSRV])?;
        // A port chosen free can be taken before pebble binds it: try again.
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Pebble::try_start(&pebble, &challtestsrv, options) {
                Ok(running) => return Some(running),
                Err(why) => failures.push(why),
            }
        }
        panic!("pebble did not start:\n{}", failures.join("\n---\n"));
    }

    fn try_start(
        pebble: &PathBuf,
        challtestsrv: &PathBuf,
        options: &PebbleOptions,
    ) -> Result<Pebble, String> {
        let dir = temp_dir("pebble");
        let log = Arc::new(Mutex::new(Vec::new()));
        let dns_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let dns_management = free_port();
        let mut command = Command::new(challtestsrv);
        command.args([
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
            "-dns01",
            &dns_addr.to_string(),
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            &format!("127.0.0.1:{dns_management}"),
        ]);
        let dns = spawn(command, "challtestsrv", &log);

        let made = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .expect("rcgen");
        let ca_file = dir.join("pebble-https.pem");
        std::fs::write(&ca_file, made.cert.pem()).expect("write cert");
        std::fs::write(
            dir.join("pebble-https.key"),
            made.signing_key.serialize_pem(),
        )
        .expect("write key");
        let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let management: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut config = serde_json::json!({ "pebble": {
            "listenAddress": listen.to_string(),
            "managementListenAddress": management.to_string(),
            "certificate": ca_file,
            "privateKey": dir.join("pebble-https.key"),
            "httpPort": options.http_port,
            "tlsPort": options.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        if let Some(validity) = options.validity {
            config["pebble"]["certificateValidityPeriod"] = validity.as_secs().into();
        }
        let config_path = dir.join("pebble-config.json");
        std::fs::write(&config_path, config.to_string()).expect("write config");
        let mut command = Command::new(pebble);
        command
            .arg("-config")
            .arg(&config_path)
            .arg("-dnsserver")
            .arg(dns_addr.to_string())
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", options.nonce_reject.to_string())
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&dir);
        let pebble = spawn(command, "pebble", &log);
        let mut running = Pebble {
            directory: format!("https://{listen}/dir"),
            ca_file,
            management,
            dir,
            pebble,
            dns,
            log,
        };
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if listening(listen) && listening(management) && listening(dns_addr) {
                return Ok(running);
            }
            let exited = running.pebble.try_wait().ok().flatten().is_some()
                || running.dns.try_wait().ok().flatten().is_some();
            if exited || Instant::now() > deadline {
                return Err(running.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Freezes pebble (SIGSTOP): its sockets still accept (the kernel's
    /// backlog) but nothing answers, as a CA that stalls. [`Pebble::resume`]
    /// thaws it with its state (accounts, orders, root) intact.
    pub(crate) fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused pebble (SIGCONT).
    pub(crate) fn resume(&self) {
        self.signal("-CONT");
    }

    /// Stops pebble for good (its ports refuse from now on): a CA that is
    /// down. Its DNS keeps running.
    pub(crate) fn stop(&mut self) {
        kill(&mut self.pebble);
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.pebble.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} pebble");
    }

    /// What pebble and its DNS have printed so far.
    pub(crate) fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    /// A GET on the management interface (HTTPS, trusting `ca_file`).
    pub(crate) fn management_get(&self, path: &str) -> String {
        let pem = std::fs::read(&self.ca_file).expect("ca file");
        let roots: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .new_agent();
        let url = format!("https://{}{path}", self.management);
        agent
            .get(&url)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .body_mut()
            .read_to_string()
            .expect("body")
    }

    /// Pebble's root certificate (PEM), which issued certificates chain to.
    pub(crate) fn root_pem(&self) -> String {
        self.management_get("/roots/0")
    }

    /// Pebble's intermediate certificate (PEM).
    pub(crate) fn intermediate_pem(&self) -> String {
        self.management_get("/intermediates/0")
    }

    /// A rustls root store holding pebble's root: what a client that
    /// trusts this CA verifies issued certificates against.
    pub(crate) fn root_store(&self) -> rustls::RootCertStore {
        use rustls::pki_types::pem::PemObject;
        let pem = self.root_pem();
        let mut store = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
            store.add(cert.expect("root PEM")).expect("root");
        }
        store
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        // A paused pebble is killed all the same (SIGKILL needs no thaw).
        kill(&mut self.pebble);
        kill(&mut self.dns);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
