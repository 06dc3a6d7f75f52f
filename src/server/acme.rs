//! The ACME manager: one plain OS thread (never a scheduler thread: the
//! CA's HTTP calls block) that gets the certificate for `acme.domains`
//! and keeps it renewed.
//!
//! - At start, a valid certificate already in `acme.state_dir` for
//!   exactly these names is installed and nothing is ordered; until one is
//!   installed, the TLS listeners serve the self-signed certificate.
//! - Renewal is due at two thirds of the certificate's lifetime, or at a
//!   random point of the CA's renewal window (RFC 9773) when it offers one
//!   (asked after each install and every 6 h; a failure is logged and
//!   falls back on two thirds). A certificate due on arrival waits the
//!   backoff: never a loop of orders.
//! - A failed order is retried after `acme.retry_base`, doubled per
//!   failure up to an hour (at least `retry_base`), each wait 75–100 % of
//!   that (jitter, so a fleet does not retry in step); the certificate in
//!   use goes on serving.
//! - Only the process holding `state_dir`'s lock orders; another looks in
//!   `state_dir` every `retry_base` and installs what the holder wrote, and
//!   takes the lock over if the holder is gone. Every process answers the
//!   challenges the holder shares in `state_dir/challenges/`
//!   (`responder.rs`), wherever a load balancer sends the CA.
//!
//! Installing is [`crate::tls::TlsKeys::install_managed`]: new handshakes
//! take the certificate, open connections keep theirs, nothing restarts.
//! Each step is a line on stderr; `/status` shows the `"acme"` object.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::acme::{
    lock_state_dir, AcmeClient, AcmeSettings, ChallengeKind, StateLock, StoredCertificate,
};
use crate::config::{AcmeChallenge, Config, TcpAddress};
use crate::service::status::AcmeReport;
use crate::stages::handshake::Handshake;
use crate::stages::Line;
use crate::tls::CertificateFiles;

mod responder;

use responder::{ListenerResponder, StateDirChallenges};

/// The longest wait between failed orders (unless `retry_base` is longer).
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How often the CA's renewal information is asked again (RFC 9773 §4.3:
/// a window can move, e.g. ahead of a revocation), or after a failure.
const ARI_EVERY: Duration = Duration::from_secs(6 * 3600);

/// The running manager; dropping it stops the thread at its next wait.
pub(crate) struct AcmeManager {
    _stop: Sender<()>,
}

/// Checks `[acme]` against the listeners the line has, as [`start`] does.
pub(crate) fn check(line: &Line, config: &Config) -> std::io::Result<()> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    config.check_acme().map_err(|e| invalid(e.to_string()))?;
    if config.acme.enabled() && line.tls.get().is_none() {
        return Err(invalid(
            "acme.domains needs a TLS listener (tls.listen)".into(),
        ));
    }
    Ok(())
}

/// Starts the manager when `acme.domains` are set.
pub(crate) fn start(line: &Arc<Line>, config: &Config) -> std::io::Result<Option<AcmeManager>> {
    check(line, config)?;
    let (true, Some(stage)) = (config.acme.enabled(), line.tls.get().cloned()) else {
        return Ok(None);
    };
    let http01 = config.acme.challenge == AcmeChallenge::Http01;
    line.challenges.answer_http(http01);
    // acme-tls/1 offered, and only for these names, with tls-alpn-01 alone.
    let alpn_names: &[String] = if http01 { &[] } else { &config.acme.domains };
    line.challenges.answer_alpn(alpn_names);
    // Every replica sharing state_dir answers what its lock holder
    // published, wherever the balancer sends the CA.
    line.challenges.share_from(Arc::new(StateDirChallenges {
        state_dir: config.acme.state_dir.clone(),
        made: Default::default(),
    }));
    stage.keys().order_for(&config.acme.domains);
    let acme = &config.acme;
    let settings = AcmeSettings {
        directory: acme.directory.clone(),
        email: (!acme.email.is_empty()).then(|| acme.email.clone()),
        domains: acme.domains.clone(),
        state_dir: acme.state_dir.clone(),
        ca_file: (!acme.ca_file.as_os_str().is_empty()).then(|| acme.ca_file.clone()),
        challenge: match acme.challenge {
            AcmeChallenge::TlsAlpn01 => ChallengeKind::TlsAlpn01,
            AcmeChallenge::Http01 => ChallengeKind::Http01,
        },
    };
    let (stop, stopped) = mpsc::channel();
    let manager = Manager {
        settings,
        challenge: acme.challenge,
        // A day at most: a wait past it helps nobody, and keeps the
        // times computed from it far from overflowing.
        retry_base: acme.retry_base.min(Duration::from_secs(86_400)),
        line: line.clone(),
        stage,
        stopped,
        lock: None,
        installed: None,
        client: None,
        window: None,
        ari_next: None,
        announced: None,
        fresh: false,
        due_on_arrival: 0,
        report: AcmeReport {
            domains: acme.domains.clone(),
            state: "ordering",
            ..AcmeReport::default()
        },
    };
    manager.publish();
    std::thread::Builder::new()
        .name("conveyor-acme".into())
        .spawn(move || {
            let line = manager.line.clone();
            // A bug must not end renewals unseen: say so in the log and
            // in /status (the certificate in use serves on).
            let run = std::panic::AssertUnwindSafe(move || manager.run());
            if std::panic::catch_unwind(run).is_err() {
                log("the manager stopped on a bug (a panic); restart to renew");
                if let Some(mut report) = line.acme.get() {
                    report.state = "error";
                    report.last_error = Some("the ACME manager stopped (panic)".into());
                    line.acme.set(report);
                }
            }
        })?;
    Ok(Some(AcmeManager { _stop: stop }))
}

struct Manager {
    settings: AcmeSettings,
    challenge: AcmeChallenge,
    retry_base: Duration,
    line: Arc<Line>,
    stage: Arc<Handshake>,
    stopped: Receiver<()>,
    lock: Option<StateLock>,
    /// The certificate in use.
    installed: Option<StoredCertificate>,
    /// The client of the last order, kept to ask for renewal information.
    client: Option<AcmeClient>,
    /// The CA's renewal window for the certificate in use, and the
    /// random point in it chosen to renew at.
    window: Option<((SystemTime, SystemTime), SystemTime)>,
    /// When to ask the CA for renewal information next; `None`: not
    /// holding the lock, or the CA offers none.
    ari_next: Option<SystemTime>,
    /// The renewal time last logged (each is said once).
    announced: Option<SystemTime>,
    /// The certificate in use came from this process's last order.
    fresh: bool,
    /// Certificates in a row that were due for renewal on arrival (a CA
    /// issuing them so, or a clock far off): the backoff's exponent, so
    /// that such a CA is not asked in a loop.
    due_on_arrival: u64,
    report: AcmeReport,
}

/// What the manager does next.
enum Next {
    /// Order now.
    Order,
    /// Nothing until then (a renewal, or a look at `state_dir`).
    WaitUntil(SystemTime),
    /// A renewal is due at `.0` (so `/status` says); wake at `.1` (that,
    /// or earlier to ask for renewal information again).
    Renewal(SystemTime, SystemTime),
}

impl Manager {
    fn run(mut self) {
        let s = &self.settings;
        log(&format!(
            "managing a certificate for {} from {} ({}, state in {})",
            s.domains.join(", "),
            s.directory,
            self.challenge,
            s.state_dir.display()
        ));
        if let Some(note) = self.port_note() {
            log(&note);
        }
        loop {
            let next = self.step();
            let wait = match next {
                Next::Order => match self.order() {
                    Ok(()) => continue,
                    Err(delay) => delay,
                },
                Next::WaitUntil(at) | Next::Renewal(at, _) => {
                    self.report.next_renewal_unix = Some(unix(at));
                    self.publish();
                    let wake = match next {
                        Next::Renewal(_, wake) => wake,
                        _ => at,
                    };
                    wake.duration_since(SystemTime::now()).unwrap_or_default()
                }
            };
            // A stop (the server dropped) ends the thread at once.
            match self.stopped.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// A note when no listener is on the port the CA connects to (443 for
    /// tls-alpn-01, 80 for http-01): fine behind a port forward, else
    /// every validation fails.
    fn port_note(&self) -> Option<String> {
        let config = self.line.config.load();
        let (port, kind, addrs): (u16, &str, Vec<u16>) = match self.challenge {
            AcmeChallenge::TlsAlpn01 => {
                (443, "TLS", config.tls.listen.iter().map(port_of).collect())
            }
            AcmeChallenge::Http01 => (
                80,
                "plain",
                config
                    .listen
                    .specs()
                    .iter()
                    .filter_map(|l| match l {
                        crate::config::ListenAddress::Tcp(a) => Some(port_of(a)),
                        _ => None,
                    })
                    .collect(),
            ),
        };
        (!addrs.contains(&port)).then(|| {
            format!(
                "note: no {kind} listener on port {port}, where the CA connects for {}; \
                 it must be forwarded to one of this server's",
                self.challenge
            )
        })
    }

    /// Takes the lock if free, installs a newer stored certificate, and
    /// says whether to order.
    fn step(&mut self) -> Next {
        if self.lock.is_none() {
            match lock_state_dir(&self.settings.state_dir) {
                Ok(Some(lock)) => {
                    log(&format!(
                        "holding the lock of {}: this process orders",
                        self.settings.state_dir.display()
                    ));
                    self.lock = Some(lock);
                    // A replica taking over asks for the renewal window
                    // of the certificate it already serves.
                    if self.installed.is_some() {
                        self.ari_next = Some(SystemTime::now());
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    let delay = self.failed(&format!("state_dir: {e}"), None);
                    return Next::WaitUntil(SystemTime::now() + delay);
                }
            }
        }
        self.report.orders = self.lock.is_some();
        if let Some(stored) = AcmeClient::stored(&self.settings) {
            let newer = self
                .installed
                .as_ref()
                .is_none_or(|installed| stored.not_after > installed.not_after);
            if newer {
                self.install(&stored, "found in state_dir");
            }
        }
        let now = SystemTime::now();
        if self.lock.is_none() {
            if self.installed.is_none() {
                if self.report.state != "waiting" {
                    log(&format!(
                        "another process holds the lock of {}: it orders; looking there for \
                         its certificate every {}",
                        self.settings.state_dir.display(),
                        shown(self.retry_base)
                    ));
                }
                self.report.state = "waiting";
            }
            return Next::WaitUntil(now + self.retry_base);
        }
        if self.ari_next.is_some_and(|at| at <= now) {
            self.ask_renewal_info();
        }
        let Some(installed) = &self.installed else {
            return Next::Order;
        };
        let due = renewal_due(installed, self.window.map(|(_, at)| at));
        let fresh = std::mem::take(&mut self.fresh);
        let early = &mut self.due_on_arrival;
        if let Some(delay) = arrival_wait(due <= now, fresh, early, self.retry_base) {
            let why = "the certificate just issued is already due for renewal \
                       (the CA's renewal window, a short lifetime or the clock)";
            log(&format!("{why}: ordering again in {}", shown(delay)));
            self.report.last_error = Some(why.into());
            return Next::WaitUntil(now + delay);
        }
        if due <= now {
            return Next::Order;
        }
        if self.announced != Some(due) {
            self.announced = Some(due);
            log(&format!("next renewal at {}", date(due)));
        }
        Next::Renewal(due, self.ari_next.map_or(due, |ari| ari.min(due)))
    }

    /// Asks the CA for its renewal window for the certificate in use
    /// (RFC 9773); a failure is logged and renewal falls back on two
    /// thirds of the lifetime until an answer comes (asked again in
    /// [`ARI_EVERY`]). A CA that offers none is not asked again.
    fn ask_renewal_info(&mut self) {
        let Some(installed) = self.installed.clone() else {
            self.ari_next = None;
            return;
        };
        let answer = match self.client.take() {
            Some(client) => Ok(client),
            None => AcmeClient::new(&self.settings),
        }
        .and_then(|mut client| {
            self.note_account(&client);
            let answer = client.renewal_info(&installed);
            self.client = Some(client);
            answer
        });
        self.ari_next = Some(SystemTime::now() + ARI_EVERY);
        match answer {
            Ok(Some(window)) if self.window.is_some_and(|(w, _)| w == window) => {}
            Ok(Some((start, end))) => {
                let span = end.duration_since(start).unwrap_or_default();
                let at = start + span.mul_f64(random_fraction());
                log(&format!(
                    "the CA's renewal window is {} to {}: renewing at {}",
                    date(start),
                    date(end),
                    date(at)
                ));
                self.window = Some(((start, end), at));
            }
            Ok(None) => self.ari_next = None,
            Err(e) => log(&format!(
                "renewal information: {e}; renewing at two thirds of the lifetime \
                 unless the CA answers later"
            )),
        }
    }

    /// One order; `Err` holds the wait before the next.
    fn order(&mut self) -> Result<(), Duration> {
        self.report.attempts += 1;
        self.report.state = "ordering";
        self.publish();
        let what = match self.installed {
            Some(_) => "renewing",
            None => "ordering",
        };
        log(&format!(
            "{what} a certificate for {} (attempt {})",
            self.settings.domains.join(", "),
            self.report.attempts
        ));
        let responder = ListenerResponder {
            challenges: self.line.challenges.clone(),
            state_dir: self.settings.state_dir.clone(),
        };
        let ordered = AcmeClient::new(&self.settings).and_then(|mut client| {
            let stored = client.order(&responder)?;
            Ok((client, stored))
        });
        let (client, stored) = match ordered {
            Ok((client, stored)) => {
                self.note_account(&client);
                (client, stored)
            }
            Err(e) => return Err(self.failed(&e.to_string(), e.retry_after())),
        };
        if !self.install(&stored, "issued") {
            let why = "the issued certificate could not be installed";
            return Err(self.failed(why, None));
        }
        self.report.issued += 1;
        self.report.failures = 0;
        self.report.last_error = None;
        // The next step asks this client for the renewal window.
        self.client = Some(client);
        self.fresh = true;
        self.publish();
        Ok(())
    }

    /// Shows `client`'s account in `/status`; logged when it is new.
    fn note_account(&mut self, client: &AcmeClient) {
        let account = client.account_url().to_string();
        if self.report.account.as_ref() != Some(&account) {
            log(&format!("account {account}"));
        }
        self.report.account = Some(account);
    }

    /// Counts a failure, says why, and returns the wait before a retry:
    /// the backoff, or longer if the CA said so (Retry-After, up to a day).
    fn failed(&mut self, why: &str, retry_after: Option<Duration>) -> Duration {
        self.report.failures += 1;
        self.report.state = "error";
        self.report.last_error = Some(why.to_string());
        let delay = backoff(self.retry_base, self.report.failures, random_fraction()).max(
            retry_after
                .unwrap_or_default()
                .min(Duration::from_secs(86_400)),
        );
        let at = SystemTime::now() + delay;
        self.report.next_renewal_unix = Some(unix(at));
        log(&format!(
            "failed ({why}); {}; retrying in {} (failure {} in a row)",
            match self.installed {
                Some(_) => "the certificate in use keeps serving",
                None => "the self-signed certificate keeps serving",
            },
            shown(delay),
            self.report.failures
        ));
        self.publish();
        delay
    }

    /// Installs `stored` for new handshakes; false (logged) if it cannot.
    fn install(&mut self, stored: &StoredCertificate, how: &str) -> bool {
        let files = CertificateFiles {
            cert: stored.cert_path.clone(),
            key: stored.key_path.clone(),
            names: self.settings.domains.clone(),
        };
        if let Err(e) = self.stage.keys().install_managed(&files) {
            log(&format!("cannot install the certificate {how}: {e}"));
            return false;
        }
        self.installed = Some(stored.clone());
        self.window = None;
        // The lock holder asks the CA for the renewal window at its next
        // step (also after a restart: the window may have moved).
        self.ari_next = self.lock.is_some().then(SystemTime::now);
        self.report.not_after_unix = Some(unix(stored.not_after));
        // Until the next step asks for the CA's window: two thirds.
        self.report.next_renewal_unix = Some(unix(renewal_due(stored, None)));
        self.report.state = "valid";
        log(&format!(
            "certificate {how} installed: valid until {} ({})",
            date(stored.not_after),
            stored.cert_path.display()
        ));
        self.publish();
        true
    }

    fn publish(&self) {
        self.line.acme.set(self.report.clone());
    }
}

/// When `cert` should be renewed: at `ari` (a point of the CA's renewal
/// window) if it is before the end, else at two thirds of its lifetime.
fn renewal_due(cert: &StoredCertificate, ari: Option<SystemTime>) -> SystemTime {
    if let Some(at) = ari.filter(|at| *at < cert.not_after) {
        return at;
    }
    let lifetime = cert
        .not_after
        .duration_since(cert.not_before)
        .unwrap_or_default();
    cert.not_before + lifetime * 2 / 3
}

/// The wait before ordering again when the certificate an order just
/// brought (`fresh`) is already `due`: the backoff of `base` over such
/// certificates in a row (`early`, reset by one that is not due), so
/// that a CA issuing them so is not asked in a loop. `None`: no wait.
fn arrival_wait(due: bool, fresh: bool, early: &mut u64, base: Duration) -> Option<Duration> {
    if !fresh {
        return None;
    }
    if !due {
        *early = 0;
        return None;
    }
    *early += 1;
    Some(backoff(base, *early, random_fraction()))
}

fn port_of(address: &TcpAddress) -> u16 {
    match address {
        TcpAddress::Addr(a) => a.port(),
        TcpAddress::Name { port, .. } => *port,
    }
}

/// The wait after `failures` failures in a row: `base` doubled per
/// failure, capped at an hour (or `base` if longer), times 75–100 %
/// (`fraction` in [0, 1)).
fn backoff(base: Duration, failures: u64, fraction: f64) -> Duration {
    let cap = MAX_BACKOFF.max(base);
    let doublings = failures.saturating_sub(1).min(20) as u32;
    let full = base.saturating_mul(1 << doublings).min(cap);
    full.mul_f64(0.75 + 0.25 * fraction)
}

/// A number in [0, 1) from the process's hash keys (random per call).
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

fn unix(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn date(at: SystemTime) -> String {
    crate::http::date::fmt_http_date(at)
}

fn shown(d: Duration) -> String {
    match d.as_secs() {
        0 => format!("{} ms", d.as_millis()),
        s if s < 120 => format!("{:.1} s", d.as_secs_f64()),
        s => format!("{} min", s / 60),
    }
}

fn log(line: &str) {
    eprintln!("conveyor: acme: {line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_an_hour_with_jitter_below() {
        let base = Duration::from_secs(60);
        assert_eq!(backoff(base, 1, 0.999_999).as_secs(), 59);
        assert_eq!(backoff(base, 1, 0.0), Duration::from_secs(45));
        assert_eq!(backoff(base, 2, 0.0), Duration::from_secs(90));
        assert_eq!(backoff(base, 3, 0.0), Duration::from_secs(180));
        assert_eq!(backoff(base, 100, 0.0), Duration::from_secs(2700));
        assert!(backoff(base, 100, 0.99) <= MAX_BACKOFF);
        // Each wait is longer than the one before, whatever the jitter.
        for n in 1..6 {
            assert!(backoff(base, n + 1, 0.0) > backoff(base, n, 0.999));
        }
        let long = Duration::from_secs(7200);
        assert_eq!(backoff(long, 5, 0.0), long.mul_f64(0.75));
    }

    #[test]
    fn renewal_is_due_in_the_window_else_at_two_thirds() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let cert = StoredCertificate {
            cert_path: "cert.pem".into(),
            key_path: "key.pem".into(),
            not_before: start,
            not_after: start + Duration::from_secs(90 * 86_400),
        };
        let two_thirds = start + Duration::from_secs(60 * 86_400);
        assert_eq!(renewal_due(&cert, None), two_thirds);
        let early = start + Duration::from_secs(86_400);
        assert_eq!(renewal_due(&cert, Some(early)), early);
        let late = start + Duration::from_secs(80 * 86_400);
        assert_eq!(renewal_due(&cert, Some(late)), late);
        // A window past the end of validity is not believed.
        assert_eq!(renewal_due(&cert, Some(cert.not_after)), two_thirds);
    }

    #[test]
    fn certificates_due_on_arrival_wait_the_growing_backoff() {
        let base = Duration::from_secs(60);
        let mut early = 0;
        // A renewal due later, or not just issued: no wait.
        assert_eq!(arrival_wait(true, false, &mut early, base), None);
        assert_eq!(arrival_wait(false, true, &mut early, base), None);
        let waits: Vec<Duration> = (0..4)
            .map(|_| arrival_wait(true, true, &mut early, base).expect("a wait"))
            .collect();
        assert!(waits[0] >= base.mul_f64(0.75) && waits[0] <= base);
        assert!(waits.windows(2).all(|w| w[1] > w[0]), "{waits:?}");
        assert_eq!(early, 4);
        // One certificate that is not due ends the series.
        assert_eq!(arrival_wait(false, true, &mut early, base), None);
        assert_eq!(early, 0);
    }

    #[test]
    fn random_fractions_stay_in_range() {
        for _ in 0..1000 {
            let f = random_fraction();
            assert!((0.0..1.0).contains(&f), "{f}");
        }
    }
}
