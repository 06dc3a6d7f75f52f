//! The state directory: the account key and the certificates, every file
//! written so that a crash at any instant leaves either the old state or
//! the new one, never a torn file.
//!
//! ```text
//! state_dir/                      0700
//!   lock                          flock'd by the process that orders
//!   accounts/<ca>/key.pem         0600, the account key (PKCS#8)
//!   accounts/<ca>/account.json    the account URL (informative)
//!   certificates/<name>/          one directory per issued certificate,
//!     cert.pem, key.pem (0600),   made whole as `.tmp-*` and renamed into
//!     meta.json                   place: it exists complete or not at all
//! ```
//!
//! `<ca>` is the directory URL's host and a hash of the whole URL, so
//! staging and production accounts never mix. Files are written to a
//! temporary name in the same directory, fsynced, renamed over the final
//! name, and the directory fsynced; leftovers of an interrupted write
//! (`.tmp-*`) are removed by the next process to take the lock (never by
//! one that did not: it could delete the holder's write in progress). The
//! account key is linked into place, never renamed over: two processes
//! starting at once without the lock keep one account, the first's.
//!
//! Modes and ownership are checked on the descriptor that is then used:
//! the state directory must belong to this process's user (another's is
//! refused), a looser mode is narrowed to 0700 by `fchmod` (fixed, not
//! refused: everything in it is ours), keys are created 0600 (`open`'s
//! mode, never a chmod after writing) and a key found looser is narrowed.
//! The state directory itself may be a symlink (the operator's choice);
//! inside it nothing is followed: directories and files are opened
//! `O_NOFOLLOW`, new files `O_EXCL`, so a planted symlink is refused and
//! nothing is written, read or chmod-ed through it.
//!
//! The lock is `flock` on `state_dir/lock`, held by an open descriptor
//! (close-on-exec, so no child inherits it) and released when the
//! [`StateLock`](super::StateLock) drops or the process dies, crash
//! included: a stale lock file never blocks anyone. Over NFS, Linux maps
//! `flock` to a POSIX byte-range lock (NFSv4 and lockd serve it); other
//! shared filesystems must support advisory locks for replicas to share
//! the directory.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;

use super::jws::{base64url, pem, sha256};
use super::x509::{parse_leaf, Leaf};
use super::{AcmeError, StoredCertificate};

/// Mode of the state directory and of every directory in it.
const DIR_MODE: u32 = 0o700;
/// Mode of private keys.
const KEY_MODE: u32 = 0o600;
/// Mode of the other files (certificates are public, the directory is not).
const FILE_MODE: u32 = 0o644;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn io_error(what: &str, path: &Path, err: std::io::Error) -> AcmeError {
    AcmeError::new(format!("{what} {}: {err}", path.display()))
}

/// Creates `dir` (and its parents) mode 0700, or narrows an existing one
/// to 0700; refuses one that is not ours. The state directory itself may
/// be a symlink (an operator's choice); below it, see `open_inner_dir`.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), AcmeError> {
    open_dir(dir, true).map(drop)
}

/// [`ensure_dir`] for a directory inside the state directory: a symlink
/// there is refused, not followed.
pub(crate) fn ensure_inner_dir(dir: &Path) -> Result<(), AcmeError> {
    open_dir(dir, false).map(drop)
}

/// Creates `dir` if missing (mode 0700, its new entry fsynced into the
/// parent), opens it (`O_NOFOLLOW` unless `follow`), and checks through
/// that descriptor that it is a directory owned by this process's user;
/// a looser mode is narrowed to 0700 on the same descriptor (`fchmod`):
/// fixed rather than refused, since everything in it is ours and the
/// narrower mode breaks nothing that worked.
fn open_dir(dir: &Path, follow: bool) -> Result<File, AcmeError> {
    if fs::symlink_metadata(dir).is_err() {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(|e| io_error("cannot create the ACME state directory", dir, e))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    let mut flags = libc::O_DIRECTORY;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(dir)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::ENOTDIR) => AcmeError::new(format!(
                "{} is a symlink or not a directory, inside the ACME state directory: refused; remove it",
                dir.display()
            )),
            _ => io_error("cannot open", dir, e),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| io_error("cannot stat", dir, e))?;
    let me = crate::runtime::sys::account::effective_uid();
    if meta.uid() != me {
        return Err(AcmeError::new(format!(
            "{} belongs to uid {}, not to this process's uid {me}: it would hold our private keys; chown it or choose another acme.state_dir",
            dir.display(),
            meta.uid()
        )));
    }
    if meta.permissions().mode() & 0o777 != DIR_MODE {
        file.set_permissions(fs::Permissions::from_mode(DIR_MODE))
            .map_err(|e| io_error("cannot make 0700", dir, e))?;
    }
    Ok(file)
}

/// Reads the regular file `path` (at most `max` bytes) without following
/// a symlink, from the descriptor that was checked; a private key found
/// with a looser mode than 0600 is narrowed on that descriptor.
pub(crate) fn read_private(path: &Path, max: u64, key: bool) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::InvalidData, "not a regular file"));
    }
    if meta.len() > max {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("{} bytes, more than {max}", meta.len()),
        ));
    }
    if key && meta.permissions().mode() & 0o077 != 0 {
        file.set_permissions(fs::Permissions::from_mode(KEY_MODE))?;
    }
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The most read of a file in the state directory: a chain is a few KiB.
pub(crate) const FILE_MAX: u64 = 1 << 20;

/// Removes leftovers of interrupted writes in the state directory: called
/// only by the holder of its lock, so never under a write in progress.
pub(crate) fn remove_all_leftovers(state_dir: &Path) {
    remove_leftovers(state_dir);
    remove_leftovers(&state_dir.join("certificates"));
    if let Ok(accounts) = fs::read_dir(state_dir.join("accounts")) {
        for account in accounts.flatten() {
            if account.file_type().is_ok_and(|t| t.is_dir()) {
                remove_leftovers(&account.path());
            }
        }
    }
}

/// Removes `.tmp-*` files and directories: writes a crash interrupted.
fn remove_leftovers(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(".tmp-") {
            continue;
        }
        let path = entry.path();
        let _ = match entry.file_type() {
            Ok(kind) if kind.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
    }
}

fn temp_name() -> String {
    format!(
        ".tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn sync_dir(dir: &Path) -> Result<(), AcmeError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("cannot fsync", dir, e))
}

/// Writes a new file at `path` (mode `mode`) and fsyncs it; fails if it
/// exists.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AcmeError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| io_error("cannot create", path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("cannot write", path, e))
}

/// Replaces `dir/name` with `bytes` atomically: a temporary file, fsync,
/// rename, fsync of the directory.
pub(crate) fn write_atomic(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<(), AcmeError> {
    let temp = dir.join(temp_name());
    write_new(&temp, bytes, mode)?;
    let path = dir.join(name);
    if let Err(err) = fs::rename(&temp, &path) {
        let _ = fs::remove_file(&temp);
        return Err(io_error("cannot rename into", &path, err));
    }
    sync_dir(dir)
}

/// The account directory for the CA at `directory_url`.
pub(crate) fn account_dir(state_dir: &Path, directory_url: &str) -> PathBuf {
    let host: String = directory_url
        .split("://")
        .nth(1)
        .unwrap_or(directory_url)
        .split(['/', ':'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
        .collect();
    let hash = base64url(&sha256(directory_url.as_bytes()));
    state_dir
        .join("accounts")
        .join(format!("{host}-{}", &hash[..12]))
}

/// The account key's PKCS#8 DER if one is stored.
pub(crate) fn load_account_key(dir: &Path) -> Result<Option<Vec<u8>>, AcmeError> {
    let path = dir.join("key.pem");
    match read_private(&path, FILE_MAX, true) {
        Ok(bytes) => match PrivateKeyDer::from_pem_slice(&bytes) {
            Ok(PrivateKeyDer::Pkcs8(der)) => Ok(Some(der.secret_pkcs8_der().to_vec())),
            _ => Err(AcmeError::new(format!(
                "{} is not a PKCS#8 PEM key: move it away to make a new ACME account",
                path.display()
            ))),
        },
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_error("cannot read the ACME account key", &path, err)),
    }
}

/// Stores a new account key, mode 0600, unless one is there already:
/// the key file is never replaced (it is the account). `Ok(None)` if
/// `pkcs8` was stored, `Ok(Some(other))` if another process stored its
/// key first (two replicas starting at once without the lock): use that.
pub(crate) fn store_account_key(dir: &Path, pkcs8: &[u8]) -> Result<Option<Vec<u8>>, AcmeError> {
    if let Some(accounts) = dir.parent() {
        ensure_inner_dir(accounts)?;
    }
    ensure_inner_dir(dir)?;
    let temp = dir.join(temp_name());
    write_new(&temp, pem("PRIVATE KEY", pkcs8).as_bytes(), KEY_MODE)?;
    let path = dir.join("key.pem");
    // link(2) fails if the name exists: a rename that never replaces.
    let linked = fs::hard_link(&temp, &path);
    let _ = fs::remove_file(&temp);
    match linked {
        Ok(()) => sync_dir(dir).map(|()| None),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => load_account_key(dir)?
            .map(Some)
            .ok_or_else(|| AcmeError::new(format!("{} vanished while stored", path.display()))),
        Err(err) => Err(io_error("cannot store the ACME account key as", &path, err)),
    }
}

/// Records the account URL (for people; the key alone finds the account).
pub(crate) fn store_account_url(dir: &Path, directory: &str, url: &str) -> Result<(), AcmeError> {
    let record = json!({ "directory": directory, "account": url });
    let text = format!("{record:#}\n");
    let path = dir.join("account.json");
    if read_private(&path, FILE_MAX, false).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(());
    }
    write_atomic(dir, "account.json", text.as_bytes(), FILE_MODE)
}

/// The domains as a set: lower case, sorted, without duplicates.
pub(crate) fn domain_set(domains: &[String]) -> Vec<String> {
    let mut set: Vec<String> = domains.iter().map(|d| d.to_ascii_lowercase()).collect();
    set.sort();
    set.dedup();
    set
}

/// Stores an issued certificate (`chain_pem`, leaf first) with its key as a
/// new directory under `state_dir/certificates`, made whole under a
/// temporary name and renamed into place.
pub(crate) fn store_certificate(
    state_dir: &Path,
    directory: &str,
    chain_pem: &[u8],
    key_pkcs8: &[u8],
) -> Result<StoredCertificate, AcmeError> {
    let leaf = leaf_of(chain_pem)
        .ok_or_else(|| AcmeError::new("the CA sent a certificate chain that does not parse"))?;
    let root = state_dir.join("certificates");
    ensure_inner_dir(&root)?;
    let temp = root.join(temp_name());
    DirBuilder::new()
        .mode(DIR_MODE)
        .create(&temp)
        .map_err(|e| io_error("cannot create", &temp, e))?;
    let meta = json!({ "directory": directory, "domains": domain_set(&leaf.dns_names) });
    let written = write_new(
        &temp.join("key.pem"),
        pem("PRIVATE KEY", key_pkcs8).as_bytes(),
        KEY_MODE,
    )
    .and_then(|()| write_new(&temp.join("cert.pem"), chain_pem, FILE_MODE))
    .and_then(|()| {
        write_new(
            &temp.join("meta.json"),
            format!("{meta:#}\n").as_bytes(),
            FILE_MODE,
        )
    })
    .and_then(|()| sync_dir(&temp));
    // Named by when it was stored (nanoseconds, fixed width): of two
    // certificates that expire together, the name says which is newer.
    let stored_at = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("{stored_at:020}-{}", hex(&leaf.serial));
    let path = root.join(&name);
    let renamed = written.and_then(|()| {
        fs::rename(&temp, &path).map_err(|e| io_error("cannot rename into", &path, e))
    });
    if let Err(err) = renamed.and_then(|()| sync_dir(&root)) {
        let _ = fs::remove_dir_all(&temp);
        return Err(err);
    }
    Ok(stored(&path, leaf))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn stored(dir: &Path, leaf: Leaf) -> StoredCertificate {
    StoredCertificate {
        cert_path: dir.join("cert.pem"),
        key_path: dir.join("key.pem"),
        not_before: leaf.not_before,
        not_after: leaf.not_after,
    }
}

/// The leaf (first certificate) of a PEM chain.
pub(crate) fn leaf_of(chain_pem: &[u8]) -> Option<Leaf> {
    let first: CertificateDer<'_> = CertificateDer::pem_slice_iter(chain_pem).next()?.ok()?;
    parse_leaf(&first)
}

/// The stored certificate from `directory` for exactly `domains`, still
/// valid at `now`, whose key matches it; the one that lasts longest (of
/// those that expire together, the last stored). Incomplete or unreadable
/// entries are skipped.
pub(crate) fn find_certificate(
    state_dir: &Path,
    directory: &str,
    domains: &[String],
    now: SystemTime,
) -> Option<(StoredCertificate, Leaf)> {
    let want = domain_set(domains);
    entries(state_dir, directory)
        .into_iter()
        .filter(|(_, leaf)| domain_set(&leaf.dns_names) == want && leaf.not_after > now)
        .max_by(|(a, x), (b, y)| (x.not_after, a).cmp(&(y.not_after, b)))
        .map(|(dir, leaf)| (stored(&dir, leaf.clone()), leaf))
}

/// Every whole entry from `directory` (see `read_entry`), with its leaf.
fn entries(state_dir: &Path, directory: &str) -> Vec<(PathBuf, Leaf)> {
    let Ok(listing) = fs::read_dir(state_dir.join("certificates")) else {
        return Vec::new();
    };
    listing
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        // A real directory: an entry that is a symlink is never followed.
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.path(), read_entry(&e.path(), directory)?)))
        .collect()
}

/// An entry's leaf, if the entry is whole, from `directory`, and its key
/// is the certificate's.
fn read_entry(dir: &Path, directory: &str) -> Option<Leaf> {
    let meta: serde_json::Value =
        serde_json::from_slice(&read_private(&dir.join("meta.json"), FILE_MAX, false).ok()?)
            .ok()?;
    if meta["directory"].as_str() != Some(directory) {
        return None;
    }
    let leaf = leaf_of(&read_private(&dir.join("cert.pem"), FILE_MAX, false).ok()?)?;
    let key = read_private(&dir.join("key.pem"), FILE_MAX, true).ok()?;
    let key = PrivateKeyDer::from_pem_slice(&key).ok()?;
    let PrivateKeyDer::Pkcs8(key) = key else {
        return None;
    };
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        key.secret_pkcs8_der(),
        &ring::rand::SystemRandom::new(),
    )
    .ok()?;
    use ring::signature::KeyPair;
    (pair.public_key().as_ref() == leaf.public_key.as_slice()).then_some(leaf)
}

/// Removes certificate entries for these domains other than the `keep`
/// newest (by expiry, then by when stored) and any that have expired: an
/// old certificate is never needed once a newer one is stored.
pub(crate) fn prune_certificates(
    state_dir: &Path,
    directory: &str,
    domains: &[String],
    keep: usize,
) {
    let want = domain_set(domains);
    let mut found: Vec<(SystemTime, PathBuf)> = entries(state_dir, directory)
        .into_iter()
        .filter(|(_, leaf)| domain_set(&leaf.dns_names) == want)
        .map(|(dir, leaf)| (leaf.not_after, dir))
        .collect();
    found.sort_by(|a, b| b.cmp(a));
    let now = SystemTime::now();
    for (i, (not_after, path)) in found.iter().enumerate() {
        if i >= keep || *not_after <= now {
            let _ = fs::remove_dir_all(path);
        }
    }
}

/// Opens (creating, 0600) the lock file in `dir`: a regular file, never
/// through a symlink.
pub(crate) fn open_lock_file(dir: &Path) -> Result<File, AcmeError> {
    ensure_dir(dir)?;
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(KEY_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| io_error("cannot open the ACME lock file", &path, e))?;
    match file.metadata() {
        Ok(meta) if meta.is_file() => Ok(file),
        Ok(_) => Err(AcmeError::new(format!(
            "{} is not a regular file: remove it",
            path.display()
        ))),
        Err(e) => Err(io_error("cannot stat", &path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const CA: &str = "https://ca.test/directory";

    fn temp_state(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "conveyor-acme-{name}-{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    /// A chain (one self-signed leaf) for `names`, and its key's PKCS#8.
    fn issued(names: &[&str], days: u64) -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        let now = SystemTime::now();
        params.not_before = (now - Duration::from_secs(60)).into();
        params.not_after = (now + Duration::from_secs(days * 86_400)).into();
        let cert = params.self_signed(&key).expect("cert");
        (
            pem("CERTIFICATE", cert.der()).into_bytes(),
            key.serialize_der(),
        )
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("meta").permissions().mode() & 0o777
    }

    #[test]
    fn a_stored_certificate_is_found_for_exactly_its_domains() {
        let state = temp_state("store");
        ensure_dir(&state).expect("dir");
        assert_eq!(mode(&state), 0o700);
        let (chain, key) = issued(&["b.test", "a.test"], 30);
        let stored = store_certificate(&state, CA, &chain, &key).expect("store");
        assert_eq!(mode(&stored.key_path), 0o600);
        assert_eq!(mode(stored.cert_path.parent().expect("dir")), 0o700);
        let domains = |d: &[&str]| d.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let now = SystemTime::now();
        let found = find_certificate(&state, CA, &domains(&["A.test", "b.test"]), now);
        assert_eq!(found.map(|f| f.0), Some(stored.clone()));
        assert!(find_certificate(&state, CA, &domains(&["a.test"]), now).is_none());
        assert!(
            find_certificate(&state, CA, &domains(&["a.test", "b.test", "c.test"]), now).is_none()
        );
        assert!(find_certificate(
            &state,
            "https://other.test/dir",
            &domains(&["a.test", "b.test"]),
            now
        )
        .is_none());
        let later = stored.not_after + Duration::from_secs(1);
        assert!(find_certificate(&state, CA, &domains(&["a.test", "b.test"]), later).is_none());
        // A newer certificate wins; pruning keeps the newest `keep`.
        let (chain2, key2) = issued(&["a.test", "b.test"], 60);
        let newer = store_certificate(&state, CA, &chain2, &key2).expect("store");
        let found = find_certificate(&state, CA, &domains(&["a.test", "b.test"]), now);
        assert_eq!(found.map(|f| f.0), Some(newer.clone()));
        prune_certificates(&state, CA, &domains(&["a.test", "b.test"]), 1);
        assert!(!stored.cert_path.exists());
        assert!(newer.cert_path.exists());
        let _ = fs::remove_dir_all(&state);
    }

    /// What a crash can leave: a half-made entry under a temporary name, a
    /// temporary file, an entry whose key is not its certificate's, an
    /// entry without its metadata. None is taken; leftovers go.
    #[test]
    fn a_crash_mid_write_leaves_the_state_readable() {
        let state = temp_state("crash");
        let root = state.join("certificates");
        ensure_dir(&root).expect("dir");
        let (chain, key) = issued(&["a.test"], 30);
        let good = store_certificate(&state, CA, &chain, &key).expect("store");
        let half = root.join(".tmp-1-1");
        fs::create_dir(&half).expect("half");
        fs::write(half.join("key.pem"), b"-----BEGIN PRIVATE KEY-----\n").expect("w");
        fs::write(root.join(".tmp-1-2"), b"torn").expect("w");
        let (other_chain, _) = issued(&["a.test"], 90);
        let mismatched = root.join("1-mismatched");
        fs::create_dir(&mismatched).expect("dir");
        fs::write(mismatched.join("cert.pem"), &other_chain).expect("w");
        fs::copy(&good.key_path, mismatched.join("key.pem")).expect("cp");
        fs::copy(
            good.cert_path.with_file_name("meta.json"),
            mismatched.join("meta.json"),
        )
        .expect("cp");
        let no_meta = root.join("2-no-meta");
        fs::create_dir(&no_meta).expect("dir");
        fs::write(no_meta.join("cert.pem"), &other_chain).expect("w");
        fs::write(no_meta.join("key.pem"), b"garbage").expect("w");
        let found = find_certificate(&state, CA, &["a.test".to_string()], SystemTime::now());
        assert_eq!(found.map(|f| f.0), Some(good));
        remove_all_leftovers(&state);
        assert!(!half.exists() && !root.join(".tmp-1-2").exists());
        let _ = fs::remove_dir_all(&state);
    }

    #[test]
    fn the_account_key_is_written_0600_and_read_back() {
        let state = temp_state("account");
        let dir = account_dir(&state, CA);
        assert!(dir.ends_with(format!(
            "ca.test-{}",
            &base64url(&sha256(CA.as_bytes()))[..12]
        )));
        assert_eq!(load_account_key(&dir).expect("none"), None);
        assert_eq!(
            store_account_key(&dir, b"not really a key").expect("store"),
            None
        );
        assert_eq!(mode(&dir.join("key.pem")), 0o600);
        // A second key never replaces the first: the first comes back.
        assert_eq!(
            store_account_key(&dir, b"another key")
                .expect("store")
                .as_deref(),
            Some(&b"not really a key"[..])
        );
        let names: Vec<_> = fs::read_dir(&dir)
            .expect("ls")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["key.pem"], "no temporary file left");
        assert_eq!(
            load_account_key(&dir).expect("some").as_deref(),
            Some(&b"not really a key"[..])
        );
        fs::write(dir.join("key.pem"), b"junk").expect("w");
        let err = load_account_key(&dir).expect_err("junk");
        assert!(err.to_string().contains("not a PKCS#8 PEM key"), "{err}");
        let _ = fs::remove_dir_all(&state);
    }

    #[test]
    fn a_looser_state_directory_and_key_are_narrowed() {
        let state = temp_state("modes");
        fs::create_dir_all(&state).expect("dir");
        fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).expect("chmod");
        ensure_dir(&state).expect("narrowed");
        assert_eq!(mode(&state), 0o700);
        let dir = account_dir(&state, CA);
        store_account_key(&dir, b"key").expect("store");
        fs::set_permissions(dir.join("key.pem"), fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(
            load_account_key(&dir).expect("load").as_deref(),
            Some(&b"key"[..])
        );
        assert_eq!(mode(&dir.join("key.pem")), 0o600);
        if crate::runtime::sys::account::is_root() {
            // Not ours: refused, not taken over.
            let theirs = temp_state("theirs");
            fs::create_dir_all(&theirs).expect("dir");
            std::os::unix::fs::chown(&theirs, Some(65534), None).expect("chown");
            let err = ensure_dir(&theirs).expect_err("not ours");
            assert!(err.to_string().contains("belongs to uid 65534"), "{err}");
            let _ = fs::remove_dir_all(&theirs);
        }
        let _ = fs::remove_dir_all(&state);
    }

    /// Symlinks planted inside the state directory are refused: nothing
    /// is written, read or chmod-ed through them.
    #[test]
    fn symlinks_inside_the_state_directory_are_refused() {
        use std::os::unix::fs::symlink;
        let state = temp_state("symlinks");
        let elsewhere = temp_state("elsewhere");
        fs::create_dir_all(&elsewhere).expect("dir");
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::write(elsewhere.join("secret"), b"-----BEGIN PRIVATE KEY-----\n").expect("w");
        ensure_dir(&state).expect("dir");
        symlink(&elsewhere, state.join("certificates")).expect("ln");
        let (chain, key) = issued(&["a.test"], 30);
        let err = store_certificate(&state, CA, &chain, &key).expect_err("symlink");
        assert!(err.to_string().contains("symlink"), "{err}");
        assert_eq!(mode(&elsewhere), 0o755, "not chmod-ed through the link");
        assert_eq!(
            fs::read_dir(&elsewhere).expect("ls").count(),
            1,
            "nothing written there"
        );
        // A certificate entry that links to a whole entry elsewhere.
        fs::remove_file(state.join("certificates")).expect("rm");
        let good = store_certificate(&state, CA, &chain, &key).expect("store");
        let entry = good.cert_path.parent().expect("entry");
        let moved = elsewhere.join("entry");
        fs::rename(entry, &moved).expect("mv");
        symlink(&moved, entry).expect("ln");
        let now = SystemTime::now();
        assert!(find_certificate(&state, CA, &["a.test".to_string()], now).is_none());
        let dir = account_dir(&state, CA);
        fs::create_dir_all(&dir).expect("dir");
        symlink(elsewhere.join("secret"), dir.join("key.pem")).expect("ln");
        // Read through, /dev/zero would never end: replaced instead.
        symlink("/dev/zero", dir.join("account.json")).expect("ln");
        store_account_url(&dir, CA, "https://ca.test/acct/1").expect("record");
        let record = fs::symlink_metadata(dir.join("account.json")).expect("meta");
        assert!(record.is_file(), "the link replaced, not followed");
        let err = load_account_key(&dir).expect_err("symlinked key");
        assert!(err.to_string().contains("cannot read"), "{err}");
        symlink(elsewhere.join("lock"), state.join("lock")).expect("ln");
        assert!(open_lock_file(&state).is_err());
        assert!(
            !elsewhere.join("lock").exists(),
            "not created through the link"
        );
        let _ = fs::remove_dir_all(&state);
        let _ = fs::remove_dir_all(&elsewhere);
    }

    /// Only the lock's holder removes leftovers: a process that fails to
    /// take the lock never deletes the holder's write in progress.
    #[test]
    fn leftovers_go_only_under_the_lock() {
        let state = temp_state("leftovers");
        let held = crate::acme::lock_state_dir(&state)
            .expect("lock")
            .expect("free");
        let root = state.join("certificates");
        ensure_inner_dir(&root).expect("dir");
        let writing = root.join(".tmp-1-1");
        fs::create_dir(&writing).expect("dir");
        assert!(crate::acme::lock_state_dir(&state).expect("try").is_none());
        assert!(writing.exists(), "the holder's write is left alone");
        drop(held);
        let _again = crate::acme::lock_state_dir(&state)
            .expect("lock")
            .expect("free");
        assert!(!writing.exists(), "the new holder cleans up");
        let _ = fs::remove_dir_all(&state);
    }
}
