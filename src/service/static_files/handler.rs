//! The static-file service (nginx's static module in spirit): resolve the
//! path, check preconditions and ranges, then answer from the cache or from
//! disk. The cache, the lookup and the sending each have their own file.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::config::{LogLevel, StaticConfig};
use crate::http::{write_head, Field, Head, Method, PreparedError};
use crate::runtime::sys::beneath::RootDir;
use crate::runtime::{self, read_seq_now};
use crate::service::{Exchange, Outcome};

use super::cache::Cache;
use super::cors::Cors;
use super::lookup::Lookup;
use super::resolve::log_refusal;
use super::send::not_modified;
use super::{
    evaluate, parse_range, unsatisfied_range, Decision, Preconditions, RangeOutcome, ResolveError,
    ResolveOptions,
};

/// Serves the files under a root directory, with one in-memory cache per worker.
pub struct StaticFiles {
    /// Files are opened beneath this descriptor, never by a path.
    pub(super) root: RootDir,
    pub(super) options: ResolveOptions,
    /// Shared: it is big, and `Target` holds this by value.
    pub(super) config: Arc<StaticConfig>,
    /// One cache per worker: no lock contention, at the price of a copy each.
    pub(super) caches: Vec<Arc<Mutex<Cache>>>,
    /// `[cors]`, when on.
    /// Boxed: rarely on, and `Target` holds this by value.
    pub(super) cors: Option<Box<Cors>>,
    /// The 404 for a path that names nothing, made once: None when an
    /// error page or a header rule for errors shapes 404s.
    not_found: Option<Box<PreparedError>>,
}

impl StaticFiles {
    /// `root` must be a directory; it is opened once here.
    pub fn new(root: &Path, config: &StaticConfig, workers: usize) -> std::io::Result<StaticFiles> {
        Ok(StaticFiles {
            root: RootDir::open(root)?,
            options: ResolveOptions {
                index: config.index.clone(),
                follow_symlinks_outside_root: config.follow_symlinks_outside_root,
                show_dotfiles: config.show_dotfiles,
            },
            config: Arc::new(config.clone()),
            caches: (0..workers.max(1)).map(|_| Arc::default()).collect(),
            cors: Cors::new(&config.cors).map(Box::new),
            not_found: match config.error_pages.contains_key(&404)
                || config.headers.iter().any(|rule| rule.errors)
            {
                true => None,
                false => Some(Box::new(PreparedError::new(404, CANNOT_SERVE))),
            },
        })
    }

    /// Answers GET or HEAD with the file at the request path (200, 206, 304,
    /// 301 to add a slash, or an error); 405 for other methods, but a CORS
    /// preflight (when `[cors]` is on) gets its 204.
    pub async fn serve(&self, ex: &mut Exchange<'_>) -> Outcome {
        // Per-request CORS fields, only when configured: none allocated else.
        let mut fields = Vec::new();
        if let Some(cors) = &self.cors {
            let origin = ex.req.field(ex.preamble(), Field::Origin);
            let origin = origin.and_then(|o| std::str::from_utf8(o).ok());
            let preflight = ex.req.method == Method::Options
                && ex
                    .req
                    .field(ex.preamble(), Field::AccessControlRequestMethod)
                    .is_some_and(|m| std::str::from_utf8(m).is_ok());
            fields = cors.fields(origin, preflight);
            if preflight {
                ex.consume_preamble();
                let head = Head {
                    extra_lines: &[&fields],
                    ..ex.head(204, None, None, &[])
                };
                write_head(ex.out, &head);
                return Outcome {
                    status: 204,
                    body_bytes: 0,
                    keep_alive: ex.keep_alive,
                };
            }
        }
        let wants_json = self.config.listing
            && ex
                .req
                .field(ex.preamble(), Field::Accept)
                .and_then(|a| std::str::from_utf8(a).ok())
                .is_some_and(|a| a.contains("application/json"));
        ex.consume_preamble();
        if !matches!(ex.req.method, Method::Get | Method::Head) {
            let allow = [("Allow", "GET, HEAD")];
            return self
                .error(ex, 405, "static files answer GET and HEAD", &allow, &fields)
                .await;
        }
        let received = ex.input.received_seq();
        let path = ex.req.path();
        let mut found = self.find(ex, path, ex.req.query(), received).await;
        if matches!(found, Err(ResolveError::Missing)) && self.falls_back(path) {
            // Only a path the rules accepted and that names nothing: a
            // refused one (dotfile, "..", outside the root) keeps its error.
            found = self.find(ex, &self.config.fallback, None, received).await;
        }
        let (info, body) = match found {
            Ok(Lookup::Found(info, body)) => (info, body),
            // After a sync, watched entries were read before the request
            // was, or are gone: cannot happen.
            Ok(Lookup::Unsynced) => {
                return self.error(ex, 503, "cache busy, retry", &[], &fields).await
            }
            Ok(Lookup::Redirect(location)) => {
                // A browser follows the redirect under CORS too: it needs
                // the fields on the 301 as on the answer it leads to.
                let location = [("Location", location.as_str())];
                let head = Head {
                    extra_lines: &[&fields],
                    ..ex.head(301, None, Some("text/plain; charset=utf-8"), &location)
                };
                return ex.respond_with(&head, b"moved: add a trailing slash\n");
            }
            Err(ResolveError::NoIndex) if self.config.listing => {
                // Rare and big: boxed, to keep the handler's future small.
                return Box::pin(self.list(ex, wants_json, &fields)).await;
            }
            Err(e) => {
                if ex.ctx.config.log.level == LogLevel::Debug {
                    log_refusal(ex.req.method.as_str(), ex.req.path(), e);
                }
                let status = e.status();
                if let Some(prepared) = self.not_found.as_deref() {
                    if status == prepared.status() && fields.is_empty() {
                        return ex.prepared_error(prepared);
                    }
                }
                return self.error(ex, status, CANNOT_SERVE, &[], &fields).await;
            }
        };
        let req = ex.req;
        // Preconditions and ranges below apply to the representation sent.
        let (info, body) = info.representation(body, req.accept_encoding.as_deref());
        let preconditions = Preconditions {
            if_match: req.if_match.as_deref(),
            if_none_match: req.if_none_match.as_deref(),
            if_modified_since: req.if_modified_since.as_deref(),
            if_unmodified_since: req.if_unmodified_since.as_deref(),
            if_range: req.if_range.as_deref(),
        };
        let honor_range = match evaluate(&preconditions, &info.validators) {
            Decision::NotModified => return not_modified(ex, &info, &fields),
            Decision::PreconditionFailed => {
                return self
                    .error(ex, 412, "precondition failed", &[], &fields)
                    .await
            }
            Decision::Proceed { honor_range } => honor_range,
        };
        let len = info.version.len;
        let range = if honor_range {
            parse_range(req.range.as_deref(), len)
        } else {
            RangeOutcome::Full
        };
        match range {
            RangeOutcome::Full => self.send(ex, &info, &body, 200, 0, len, &[], &fields).await,
            RangeOutcome::Partial {
                start,
                end_inclusive,
            } => {
                self.send(
                    ex,
                    &info,
                    &body,
                    206,
                    start,
                    end_inclusive + 1,
                    &[],
                    &fields,
                )
                .await
            }
            RangeOutcome::Unsatisfiable => {
                let range = unsatisfied_range(len);
                // The range was measured against the representation chosen.
                let extra = [
                    ("Content-Range", range.as_str()),
                    ("Vary", "Accept-Encoding"),
                ];
                let extra = &extra[..1 + usize::from(info.vary)];
                self.error(ex, 416, "range not satisfiable", extra, &fields)
                    .await
            }
        }
    }

    /// The file for `url_path`, through this worker's cache, waiting for the
    /// cache to learn of changes made before the request when it must.
    pub(super) async fn find(
        &self,
        ex: &mut Exchange<'_>,
        url_path: &str,
        query: Option<&str>,
        received: u64,
    ) -> Result<Lookup, ResolveError> {
        let found = self.lookup(url_path, query, received);
        if !matches!(found, Ok(Lookup::Unsynced)) {
            return found;
        }
        // Let the other requests of this scheduler turn be read first:
        // one read of the inotify queue then covers them all. At most
        // SYNC_BATCH wait so (bounding the wait and the handlers alive at
        // once), and their read buffers go back to the pool meanwhile.
        let waiting = read_seq_now().saturating_sub(self.cache().synced_at);
        if waiting < SYNC_BATCH {
            ex.input.release_if_empty();
            runtime::yield_now().await;
        }
        self.cache().sync_for(received);
        self.lookup(url_path, query, received)
    }

    /// Whether a GET or HEAD for `url_path`, which names no file, gets the
    /// `static.fallback` file.
    fn falls_back(&self, url_path: &str) -> bool {
        if self.config.fallback.is_empty() {
            return false;
        }
        let name = url_path.rsplit('/').next().unwrap_or("");
        !self.config.fallback_only_without_extension || !name.contains('.')
    }

    /// An error response: the configured page for `status` if there is one
    /// (and it can be served), else the plain text; with the fields of the
    /// rules that apply to errors, and `fields` (CORS).
    pub(super) async fn error(
        &self,
        ex: &mut Exchange<'_>,
        status: u16,
        message: &str,
        extra: &[(&str, &str)],
        fields: &[u8],
    ) -> Outcome {
        if let Some(page) = self.config.error_pages.get(&status) {
            let received = ex.input.received_seq();
            // Boxed: `find` may wait, and error pages are rare.
            if let Ok(Lookup::Found(info, body)) =
                Box::pin(self.find(ex, page, None, received)).await
            {
                let len = info.version.len;
                return Box::pin(self.send(ex, &info, &body, status, 0, len, extra, fields)).await;
            }
        }
        let rules = self.error_fields(ex.req.path());
        let with_rules: Vec<(&str, &str)>;
        let extra = match rules.is_empty() {
            true => extra,
            false => {
                with_rules = extra
                    .iter()
                    .copied()
                    .chain(rules.iter().map(|(n, v)| (n.as_str(), v.as_str())))
                    .collect();
                &with_rules
            }
        };
        let head = Head {
            extra_lines: &[fields],
            ..ex.head(status, None, None, extra)
        };
        ex.error_with(&head, message)
    }
}

/// The text of a 404 (and of the 400 and 403 a refused path gets).
const CANNOT_SERVE: &str = "cannot serve that path";

/// Requests read since the last read of the inotify queue beyond which the
/// next one reads it at once rather than waiting for the rest of the turn.
const SYNC_BATCH: u64 = 32;
