//! The socket side of the static-file service (nginx's static module in
//! spirit): resolve the path, check preconditions and ranges, then answer
//! from the in-memory cache (small files, header prebuilt) or from disk
//! (large files with sendfile, never through user space).

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::StaticConfig;
use crate::http::{response::write_status_line_and_date, write_head, Method};
use crate::runtime::{current_worker, timeout};
use crate::service::{Exchange, Outcome, Writing};

use super::{
    content_range, content_type, evaluate, parse_range, resolve, unsatisfied_range, Decision,
    Preconditions, RangeOutcome, ResolveOptions, Resolved, Validators,
};

pub struct StaticFiles {
    root: PathBuf,
    options: ResolveOptions,
    config: StaticConfig,
    /// One cache per worker: no lock contention, at the price of a copy each.
    caches: Vec<Mutex<Cache>>,
}

/// Identity of a file version: any change to it invalidates a cached copy.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Version {
    len: u64,
    mtime_ns: i128,
    ino: u64,
    dev: u64,
}

impl Version {
    fn of(meta: &Metadata) -> Version {
        Version {
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }
}

/// A file as it is served.
struct FileInfo {
    path: PathBuf,
    version: Version,
    validators: Validators,
    content_type: String,
    /// "Content-Type … Last-Modified … Accept-Ranges" lines, prebuilt.
    head_fields: Vec<u8>,
}

struct CachedFile {
    info: Arc<FileInfo>,
    body: Arc<[u8]>,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<String, Arc<CachedFile>>,
    bytes: u64,
}

enum Body {
    Memory(Arc<[u8]>),
    Disk,
}

impl StaticFiles {
    /// `root` must exist; it is canonicalized once here.
    pub fn new(root: &Path, config: &StaticConfig, workers: usize) -> std::io::Result<StaticFiles> {
        Ok(StaticFiles {
            root: root.canonicalize()?,
            options: ResolveOptions {
                index: config.index.clone(),
                follow_symlinks_outside_root: config.follow_symlinks_outside_root,
                show_dotfiles: config.show_dotfiles,
            },
            config: config.clone(),
            caches: (0..workers.max(1)).map(|_| Mutex::default()).collect(),
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        let index = current_worker().unwrap_or(0) % self.caches.len();
        self.caches[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub async fn serve(&self, ex: &mut Exchange<'_>) -> Outcome {
        ex.conn.input.consume(ex.req.preamble_len);
        if !matches!(ex.req.method, Method::Get | Method::Head) {
            return ex.error(
                405,
                "static files answer GET and HEAD",
                &[("Allow", "GET, HEAD")],
            );
        }
        let (info, body) = match self.lookup(ex.req.path(), ex.req.query()) {
            Ok(Lookup::Found(info, body)) => (info, body),
            Ok(Lookup::Redirect(location)) => {
                return ex.respond(
                    301,
                    "text/plain; charset=utf-8",
                    b"moved: add a trailing slash\n",
                    &[("Location", &location)],
                )
            }
            Err(status) => return ex.error(status, "cannot serve that path", &[]),
        };
        let req = ex.req;
        let preconditions = Preconditions {
            if_match: req.if_match.as_deref(),
            if_none_match: req.if_none_match.as_deref(),
            if_modified_since: req.if_modified_since.as_deref(),
            if_unmodified_since: req.if_unmodified_since.as_deref(),
            if_range: req.if_range.as_deref(),
        };
        let honor_range = match evaluate(&preconditions, &info.validators) {
            Decision::NotModified => return not_modified(ex, &info),
            Decision::PreconditionFailed => return ex.error(412, "precondition failed", &[]),
            Decision::Proceed { honor_range } => honor_range,
        };
        let len = info.version.len;
        let range = if honor_range {
            parse_range(req.range.as_deref(), len)
        } else {
            RangeOutcome::Full
        };
        match range {
            RangeOutcome::Full => self.send(ex, &info, &body, 200, 0, len).await,
            RangeOutcome::Partial {
                start,
                end_inclusive,
            } => {
                self.send(ex, &info, &body, 206, start, end_inclusive + 1)
                    .await
            }
            RangeOutcome::Unsatisfiable => {
                let range = unsatisfied_range(len);
                ex.error(416, "range not satisfiable", &[("Content-Range", &range)])
            }
        }
    }

    /// The file for a URL path: from this worker's cache if the file on disk
    /// is still the same version, else resolved afresh.
    fn lookup(&self, url_path: &str, query: Option<&str>) -> Result<Lookup, u16> {
        let cached = self.cache().entries.get(url_path).cloned();
        if let Some(entry) = cached {
            // One stat per request keeps the cache honest: a changed file is
            // never served stale.
            match std::fs::metadata(&entry.info.path) {
                Ok(meta) if Version::of(&meta) == entry.info.version => {
                    let info = entry.info.clone();
                    return Ok(Lookup::Found(info, Body::Memory(entry.body.clone())));
                }
                _ => self.evict(url_path),
            }
        }
        let (path, meta) = match resolve(&self.root, url_path, query, &self.options) {
            Ok(Resolved::File { path, meta }) => (path, meta),
            Ok(Resolved::RedirectToSlash(location)) => return Ok(Lookup::Redirect(location)),
            Err(e) => return Err(e.status()),
        };
        let info = Arc::new(file_info(path, &meta));
        if meta.len() <= self.config.cache_max_file_size {
            if let Ok(body) = read_whole(&info.path, meta.len()) {
                let body: Arc<[u8]> = body.into();
                self.insert(url_path, &info, &body);
                return Ok(Lookup::Found(info, Body::Memory(body)));
            }
        }
        Ok(Lookup::Found(info, Body::Disk))
    }

    fn insert(&self, url_path: &str, info: &Arc<FileInfo>, body: &Arc<[u8]>) {
        let mut cache = self.cache();
        let size = body.len() as u64;
        if cache.bytes + size > self.config.cache_max_bytes {
            return; // full: serve from disk rather than thrash
        }
        cache.bytes += size;
        let entry = Arc::new(CachedFile {
            info: info.clone(),
            body: body.clone(),
        });
        if let Some(old) = cache.entries.insert(url_path.to_string(), entry) {
            cache.bytes -= old.body.len() as u64;
        }
    }

    fn evict(&self, url_path: &str) {
        let mut cache = self.cache();
        if let Some(old) = cache.entries.remove(url_path) {
            cache.bytes -= old.body.len() as u64;
        }
    }

    /// Sends bytes `start..end` of the file with `status` (200 or 206).
    async fn send(
        &self,
        ex: &mut Exchange<'_>,
        info: &FileInfo,
        body: &Body,
        status: u16,
        start: u64,
        end: u64,
    ) -> Outcome {
        let len = info.version.len;
        let count = end - start;
        let is_head = ex.req.method == Method::Head;
        if status == 200 {
            // The fast path: status line and Date, then the prebuilt fields.
            write_status_line_and_date(ex.out, 200);
            ex.out.extend_from_slice(&info.head_fields);
            ex.out.extend_from_slice(b"Content-Length: ");
            ex.out.extend_from_slice(count.to_string().as_bytes());
            ex.out.extend_from_slice(b"\r\n");
            if !ex.keep_alive {
                ex.out.extend_from_slice(b"Connection: close\r\n");
            } else if ex.req.minor_version == 0 {
                ex.out.extend_from_slice(b"Connection: keep-alive\r\n");
            }
            ex.out.extend_from_slice(b"\r\n");
        } else {
            let range = content_range(start, end - 1, len);
            let last_modified = info.validators.last_modified_http();
            let extra = [
                ("Content-Range", range.as_str()),
                ("ETag", info.validators.etag.as_str()),
                ("Last-Modified", last_modified.as_str()),
                ("Accept-Ranges", "bytes"),
            ];
            let head = ex.head(status, Some(count), Some(&info.content_type), &extra);
            write_head(ex.out, &head);
        }
        let mut outcome = Outcome {
            status,
            body_bytes: if is_head { 0 } else { count },
            keep_alive: ex.keep_alive,
        };
        if is_head || count == 0 {
            return outcome;
        }
        match body {
            Body::Memory(bytes) => {
                ex.out
                    .extend_from_slice(&bytes[start as usize..end as usize]);
            }
            Body::Disk => {
                if self.send_from_disk(ex, info, start, count).await.is_err() {
                    outcome.keep_alive = false;
                }
            }
        }
        outcome
    }

    async fn send_from_disk(
        &self,
        ex: &mut Exchange<'_>,
        info: &FileInfo,
        start: u64,
        count: u64,
    ) -> std::io::Result<()> {
        let mut file = File::open(&info.path)?;
        if count < self.config.sendfile_min_size {
            // Small enough to copy: it leaves with the head in one write.
            let mut chunk = vec![0; count as usize];
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start))?;
            file.read_exact(&mut chunk)?;
            ex.out.extend_from_slice(&chunk);
            return Ok(());
        }
        ex.flush().await?;
        let _writing = Writing::new(ex.line.metrics.here());
        let limit = ex.line.config.timeouts.write;
        let mut offset = start;
        let end = start + count;
        while offset < end {
            let want = usize::try_from(end - offset)
                .unwrap_or(usize::MAX)
                .min(1 << 30);
            let sent = timeout(limit, ex.conn.stream.sendfile(&file, &mut offset, want)).await??;
            if sent == 0 {
                // The file shrank under us: the promised length cannot be met.
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            ex.line.metrics.here().bytes_out.add_local(sent as u64);
        }
        Ok(())
    }
}

enum Lookup {
    Found(Arc<FileInfo>, Body),
    Redirect(String),
}

fn not_modified(ex: &mut Exchange<'_>, info: &FileInfo) -> Outcome {
    let last_modified = info.validators.last_modified_http();
    let extra = [
        ("ETag", info.validators.etag.as_str()),
        ("Last-Modified", last_modified.as_str()),
    ];
    let head = ex.head(304, None, None, &extra);
    write_head(ex.out, &head);
    Outcome {
        status: 304,
        body_bytes: 0,
        keep_alive: ex.keep_alive,
    }
}

fn file_info(path: PathBuf, meta: &Metadata) -> FileInfo {
    let validators = Validators::from_metadata(meta);
    let content_type = content_type(&path).into_owned();
    let mut head_fields = Vec::with_capacity(160);
    for (name, value) in [
        ("Content-Type", content_type.as_str()),
        ("ETag", validators.etag.as_str()),
        ("Last-Modified", validators.last_modified_http().as_str()),
        ("Accept-Ranges", "bytes"),
    ] {
        head_fields.extend_from_slice(name.as_bytes());
        head_fields.extend_from_slice(b": ");
        head_fields.extend_from_slice(value.as_bytes());
        head_fields.extend_from_slice(b"\r\n");
    }
    FileInfo {
        path,
        version: Version::of(meta),
        validators,
        content_type,
        head_fields,
    }
}

fn read_whole(path: &Path, len: u64) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(len as usize);
    File::open(path)?.read_to_end(&mut body)?;
    Ok(body)
}
