//! The static-file service (nginx's static module in spirit): resolve the
//! path, check preconditions and ranges, then answer from the cache or from
//! disk. The cache, the lookup, the sending and the listings each have
//! their own file; this one decides which answer a request gets.

use std::fs::File;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::{LogLevel, StaticConfig};
use crate::http::{write_head, Field, Head, Method, PreparedError, Request};
use crate::service::rewrite::{redirect, rewrite_loop, split, Rules, Step};
use crate::service::{Exchange, Outcome};

use super::cache::{Body, FileInfo};
use super::cors::Cors;
use super::headers::error_fields;
use super::listing::list;
use super::lookup::{CachedFiles, Lookup, Wait};
use super::resolve::{has_dot_dot, log_refusal};
use super::send::{not_modified, send, send_now, send_rest, Reply, Sent};
use super::store::CacheFigures;
use super::{
    evaluate, parse_range, unsatisfied_range, Decision, Preconditions, RangeOutcome, ResolveError,
};

/// Serves the files under a root directory, with one in-memory cache per worker.
pub struct StaticFiles {
    files: CachedFiles,
    /// Shared with `files`: it is big, and `Target` holds this by value.
    config: Arc<StaticConfig>,
    /// `[cors]`, when on.
    /// Boxed: rarely on, and `Target` holds this by value.
    cors: Option<Box<Cors>>,
    /// The 404 for a path that names nothing, made once: None when an
    /// error page or a header rule for errors shapes 404s.
    not_found: Option<Box<PreparedError>>,
    /// The `_redirects` rules that apply where no file answers, if any.
    rules: Option<Arc<Rules>>,
}

/// `future` boxed, in a function of its own: a rare path's allocation
/// and moves stay out of the caller, which the compiler then inlines
/// more into (`serve`, run on every request: measured with callgrind).
#[inline(never)]
fn boxed<'a, T>(future: impl Future<Output = T> + 'a) -> Pin<Box<dyn Future<Output = T> + 'a>> {
    Box::pin(future)
}

/// What following the `_redirects` rules came to: a file, for the one
/// place that sends found files, or an answer already made.
enum Followed {
    File(Arc<FileInfo>, Body),
    Answered(Outcome),
}

impl StaticFiles {
    /// `root` must be a directory; it is opened once here.
    pub fn new(root: &Path, config: &StaticConfig, workers: usize) -> std::io::Result<StaticFiles> {
        let config = Arc::new(config.clone());
        Ok(StaticFiles {
            files: CachedFiles::new(root, config.clone(), workers)?,
            cors: Cors::new(&config.cors).map(Box::new),
            not_found: match config.error_pages.contains_key(&404)
                || config.headers.iter().any(|rule| rule.errors)
            {
                true => None,
                false => Some(Box::new(PreparedError::new(404, CANNOT_SERVE))),
            },
            config,
            rules: None,
        })
    }

    /// These files with the `_redirects` rules that `rules` holds, which
    /// apply to the paths no file answers.
    pub fn with_rules(mut self, rules: Arc<Rules>) -> StaticFiles {
        self.rules = rules.has_netlify().then_some(rules);
        self
    }

    /// The file cache's figures, for `/status`.
    pub fn cache_figures(&self) -> CacheFigures {
        self.files.figures()
    }

    /// Answers GET or HEAD with the file at the request path (200, 206, 304,
    /// 301 to add a slash, or an error); 405 for other methods, but a CORS
    /// preflight (when `[cors]` is on) gets its 204.
    pub async fn serve(&self, ex: &mut Exchange<'_>) -> Outcome {
        // Per-request CORS fields, only when configured: none allocated else.
        let mut cors = Vec::new();
        if let Some(config) = &self.cors {
            let preflight;
            (cors, preflight) = cors_fields(config, ex);
            if preflight {
                return answer_preflight(ex, &cors);
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
                .error(ex, 405, "static files answer GET and HEAD", &allow, &cors)
                .await;
        }
        if let Some(status) = ex.serve_as() {
            return self.page_as(ex, status, &cors).await;
        }
        // The common case answered now; a wait (for the cache to sync, or
        // for a compression) only when it must.
        let found = match self.find_now(ex) {
            Ok(found) => found,
            Err((wait, fallback)) => self.find_after(ex, wait, fallback).await,
        };
        let (info, body) = match found {
            Ok(Lookup::Found(info, body)) => (info, body),
            // After a sync, watched entries were read before the request
            // was, or are gone: cannot happen.
            Ok(Lookup::Unsynced) => {
                return self.error(ex, 503, "cache busy, retry", &[], &cors).await
            }
            Ok(Lookup::Redirect(location)) => return add_slash(ex, &location, &cors),
            Err(ResolveError::NoIndex) if self.config.listing => {
                // Rare and big: boxed, to keep the handler's future small.
                let listed = boxed(list(
                    ex,
                    self.files.root(),
                    self.files.options(),
                    wants_json,
                    &cors,
                ));
                return match listed.await {
                    Ok(outcome) => outcome,
                    Err(refusal) => {
                        self.error(ex, refusal.status, refusal.message, &[], &cors)
                            .await
                    }
                };
            }
            // A directory without its index names no file either.
            Err(ResolveError::Missing | ResolveError::NoIndex)
                if self.rules_take(ex.req.path()) =>
            {
                // Rare: boxed, to keep the handler's future small.
                match boxed(self.follow(ex, &cors)).await {
                    Followed::File(info, body) => (info, body),
                    Followed::Answered(outcome) => return outcome,
                }
            }
            Err(e) => return self.refuse(ex, e, &cors).await,
        };
        // The one place a found file is sent from.
        match self.send_found(ex, info, body, &cors) {
            Ok(outcome) => outcome,
            Err(rest) => self.send_rest(ex, rest, &cors).await,
        }
    }

    /// Whether a `_redirects` rule answers `path` when no file does.
    fn rules_take(&self, path: &str) -> bool {
        self.rules.as_ref().is_some_and(|r| r.takes_miss(path))
    }

    /// The answer to a path no file answers and a `_redirects` rule
    /// takes: its redirect, or the file at its `to` (whose own miss goes
    /// through the rules again, up to `MAX_REWRITES` times), else the
    /// fallback or 404.
    async fn follow(&self, ex: &mut Exchange<'_>, cors: &[u8]) -> Followed {
        let Some(rules) = self.rules.as_deref() else {
            return Followed::Answered(self.refuse(ex, ResolveError::Missing, cors).await);
        };
        let received = ex.input.received_seq();
        let encoded = ex.req.accept_encoding.is_some();
        let mut step = rules.on_miss(ex.req.path(), ex.req.query());
        for _ in 0..=crate::config::MAX_REWRITES {
            let (target, status) = match step {
                None => break,
                Some(Step::Redirect(status, location)) => {
                    return Followed::Answered(redirect(ex, status, &location, cors));
                }
                Some(Step::Rewrite(target, status)) => (target, status),
            };
            let (path, query) = split(&target);
            if status != 200 {
                return Followed::Answered(self.page(ex, path, status, cors).await);
            }
            match self
                .files
                .find(ex.input, path, query, received, encoded)
                .await
            {
                Ok(Lookup::Found(info, body)) => return Followed::File(info, body),
                Ok(Lookup::Redirect(location)) => {
                    return Followed::Answered(add_slash(ex, &location, cors))
                }
                Ok(Lookup::Unsynced) => {
                    let busy = self.error(ex, 503, "cache busy, retry", &[], cors).await;
                    return Followed::Answered(busy);
                }
                Err(ResolveError::Missing | ResolveError::NoIndex) => {
                    step = rules.on_miss(path, query)
                }
                Err(e) => return Followed::Answered(self.refuse(ex, e, cors).await),
            }
        }
        if step.is_some() {
            return Followed::Answered(rewrite_loop(ex));
        }
        let fallback = &self.config.fallback;
        if self.plain_falls_back(ex.req.path()) {
            if let Ok(Lookup::Found(info, body)) = self
                .files
                .find(ex.input, fallback, None, received, encoded)
                .await
            {
                return Followed::File(info, body);
            }
        }
        Followed::Answered(self.refuse(ex, ResolveError::Missing, cors).await)
    }

    /// The file at the request path served whole with `status` (a
    /// rewrite's 404), boxed: rare, and kept out of `serve`.
    #[inline(never)]
    fn page_as<'a>(
        &'a self,
        ex: &'a mut Exchange<'_>,
        status: u16,
        cors: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Outcome> + 'a>> {
        Box::pin(async move {
            let path = ex.req.path().to_string();
            self.page(ex, &path, status, cors).await
        })
    }

    /// The file at `path` served whole with `status` (a rule's 404, an
    /// error page), else the plain error.
    async fn page(&self, ex: &mut Exchange<'_>, path: &str, status: u16, cors: &[u8]) -> Outcome {
        let received = ex.input.received_seq();
        if let Ok(Lookup::Found(info, body)) =
            Box::pin(self.files.find(ex.input, path, None, received, false)).await
        {
            let reply = Reply {
                status,
                start: 0,
                end: info.version.len,
                extra: &[],
                cors,
            };
            let min = self.config.sendfile_min_size;
            return Box::pin(send(ex, &info, &body, reply, min)).await;
        }
        self.error(ex, status, CANNOT_SERVE, &[], cors).await
    }

    /// The file at the request path, or the fallback file for a path the
    /// rules accepted and that names nothing; else what must be waited for
    /// first, and whether for the fallback.
    #[inline(always)]
    fn find_now(&self, ex: &Exchange<'_>) -> Result<Result<Lookup, ResolveError>, (Wait, bool)> {
        let received = ex.input.received_seq();
        let (path, query) = (ex.req.path(), ex.req.query());
        let encoded = ex.req.accept_encoding.is_some();
        let found = self
            .files
            .find_now(path, query, received, encoded)
            .map_err(|w| (w, false))?;
        if matches!(found, Err(ResolveError::Missing)) && self.falls_back(path) {
            // A refused path (dotfile, "..", outside the root) keeps its error.
            let fallback = &self.config.fallback;
            return self
                .files
                .find_now(fallback, None, received, encoded)
                .map_err(|w| (w, true));
        }
        Ok(found)
    }

    /// `find_now`'s answer after its `wait`, for the fallback file or not.
    async fn find_after(
        &self,
        ex: &mut Exchange<'_>,
        wait: Wait,
        fallback: bool,
    ) -> Result<Lookup, ResolveError> {
        let received = ex.input.received_seq();
        let (path, query) = (ex.req.path(), ex.req.query());
        let encoded = ex.req.accept_encoding.is_some();
        let files = &self.files;
        if fallback {
            let fallback = &self.config.fallback;
            return files
                .find_after(wait, ex.input, fallback, None, received, encoded)
                .await;
        }
        let found = files
            .find_after(wait, ex.input, path, query, received, encoded)
            .await;
        if matches!(found, Err(ResolveError::Missing)) && self.falls_back(path) {
            let fallback = &self.config.fallback;
            return files
                .find(ex.input, fallback, None, received, encoded)
                .await;
        }
        found
    }

    /// Sends the representation of a found file the request asks for, as
    /// its preconditions and range say: whatever needs no waiting now, not
    /// in a future (a cache hit's whole answer), else what is left to do.
    #[inline(always)]
    fn send_found(
        &self,
        ex: &mut Exchange<'_>,
        info: Arc<FileInfo>,
        body: Body,
        cors: &[u8],
    ) -> Result<Outcome, Rest> {
        // Preconditions and ranges apply to the representation sent.
        let accept = ex.req.accept_encoding.as_deref();
        let (info, body) = info.representation(body, accept, self.files.store());
        match answer(ex.req, &info) {
            Answer::NotModified => Ok(not_modified(ex, &info, cors)),
            Answer::PreconditionFailed => Err(Rest::PreconditionFailed),
            Answer::Bytes { status, start, end } => {
                let reply = Reply {
                    status,
                    start,
                    end,
                    extra: &[],
                    cors,
                };
                match send_now(ex, &info, &body, reply) {
                    Sent::Done(outcome) => Ok(outcome),
                    Sent::FromDisk(outcome, file, start) => {
                        Err(Rest::Disk(info.clone(), file.clone(), start, outcome))
                    }
                }
            }
            Answer::Unsatisfiable => Err(Rest::Unsatisfiable(info.version.len, info.vary)),
        }
    }

    /// What `send_found` left to do, which may wait.
    async fn send_rest(&self, ex: &mut Exchange<'_>, rest: Rest, cors: &[u8]) -> Outcome {
        match rest {
            Rest::Disk(info, file, start, outcome) => {
                let min = self.config.sendfile_min_size;
                send_rest(ex, &info, &file, start, outcome, min).await
            }
            Rest::PreconditionFailed => self.error(ex, 412, "precondition failed", &[], cors).await,
            Rest::Unsatisfiable(len, vary) => {
                let range = unsatisfied_range(len);
                // The range was measured against the representation chosen.
                let extra = [
                    ("Content-Range", range.as_str()),
                    ("Vary", "Accept-Encoding"),
                ];
                let extra = &extra[..1 + usize::from(vary)];
                self.error(ex, 416, "range not satisfiable", extra, cors)
                    .await
            }
        }
    }

    /// The answer to a path that cannot be served: 400, 403 or 404.
    async fn refuse(&self, ex: &mut Exchange<'_>, why: ResolveError, cors: &[u8]) -> Outcome {
        if ex.ctx.config.log.level == LogLevel::Debug {
            let hint = match why {
                // The first thing `conveyor DIR` shows a site without one.
                ResolveError::NoIndex => format!(
                    "there is no {:?} in it, and static.listing (--listing) is off",
                    self.config.index
                ),
                _ => String::new(),
            };
            log_refusal(ex.req.method.as_str(), ex.req.path(), why, &hint);
        }
        let status = why.status();
        if let Some(prepared) = self.not_found.as_deref() {
            if status == prepared.status() && cors.is_empty() {
                return ex.prepared_error(prepared);
            }
        }
        self.error(ex, status, CANNOT_SERVE, &[], cors).await
    }

    /// Whether a GET or HEAD for `url_path`, which names no file, gets the
    /// `static.fallback` file: never when it has a `..` segment.
    fn falls_back(&self, url_path: &str) -> bool {
        self.plain_falls_back(url_path) && !self.rules_take(url_path)
    }

    /// [`Self::falls_back`] whatever the `_redirects` rules say.
    fn plain_falls_back(&self, url_path: &str) -> bool {
        // Decoded first: `%2e%2e` is `..` too.
        if self.config.fallback.is_empty() || has_dot_dot(url_path) {
            return false;
        }
        let name = url_path.rsplit('/').next().unwrap_or("");
        !self.config.fallback_only_without_extension || !name.contains('.')
    }

    /// An error response: the configured page for `status` if there is one
    /// (and it can be served), else the plain text; with the fields of the
    /// rules that apply to errors, and the `cors` lines.
    async fn error(
        &self,
        ex: &mut Exchange<'_>,
        status: u16,
        message: &str,
        extra: &[(&str, &str)],
        cors: &[u8],
    ) -> Outcome {
        if let Some(page) = self.config.error_pages.get(&status) {
            let received = ex.input.received_seq();
            // Boxed: `find` may wait, and error pages are rare.
            if let Ok(Lookup::Found(info, body)) =
                Box::pin(self.files.find(ex.input, page, None, received, false)).await
            {
                let reply = Reply {
                    status,
                    start: 0,
                    end: info.version.len,
                    extra,
                    cors,
                };
                let min = self.config.sendfile_min_size;
                return Box::pin(send(ex, &info, &body, reply, min)).await;
            }
        }
        let rules = error_fields(&self.config.headers, ex.req.path());
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
            extra_lines: &[cors],
            ..ex.head(status, None, None, extra)
        };
        ex.error_with(&head, message)
    }
}

/// What is left of a found file's answer after `send_found`.
enum Rest {
    /// The bytes on disk from this offset, after the head.
    Disk(Arc<FileInfo>, Arc<File>, u64, Outcome),
    /// The 412, which may be a page on disk.
    PreconditionFailed,
    /// The 416 for a representation of this length, varying or not.
    Unsatisfiable(u64, bool),
}

/// What a request gets of a file it found, by its preconditions and range.
enum Answer {
    NotModified,
    PreconditionFailed,
    /// Bytes `start..end` of the representation, with this status.
    Bytes {
        status: u16,
        start: u64,
        end: u64,
    },
    Unsatisfiable,
}

/// Decided apart from the sending: what is worked out here is not kept
/// in the handler's future while the response goes out.
#[inline(always)]
fn answer(req: &Request, info: &FileInfo) -> Answer {
    let preconditions = Preconditions {
        if_match: req.if_match(),
        if_none_match: req.if_none_match(),
        if_modified_since: req.if_modified_since(),
        if_unmodified_since: req.if_unmodified_since(),
        if_range: req.if_range(),
    };
    let honor_range = match evaluate(&preconditions, &info.validators) {
        Decision::NotModified => return Answer::NotModified,
        Decision::PreconditionFailed => return Answer::PreconditionFailed,
        Decision::Proceed { honor_range } => honor_range,
    };
    let len = info.version.len;
    let range = match honor_range {
        true => parse_range(req.range(), len),
        false => RangeOutcome::Full,
    };
    match range {
        RangeOutcome::Full => Answer::Bytes {
            status: 200,
            start: 0,
            end: len,
        },
        RangeOutcome::Partial {
            start,
            end_inclusive,
        } => Answer::Bytes {
            status: 206,
            start,
            end: end_inclusive + 1,
        },
        RangeOutcome::Unsatisfiable => Answer::Unsatisfiable,
    }
}

/// The CORS fields for this request, and whether it is a preflight.
fn cors_fields(cors: &Cors, ex: &Exchange<'_>) -> (Vec<u8>, bool) {
    let field = |name| {
        let value = ex.req.field(ex.preamble(), name)?;
        std::str::from_utf8(value).ok()
    };
    let preflight =
        ex.req.method == Method::Options && field(Field::AccessControlRequestMethod).is_some();
    (cors.fields(field(Field::Origin), preflight), preflight)
}

/// The 204 a CORS preflight gets.
fn answer_preflight(ex: &mut Exchange<'_>, cors: &[u8]) -> Outcome {
    ex.consume_preamble();
    let head = Head {
        extra_lines: &[cors],
        ..ex.head(204, None, None, &[])
    };
    write_head(ex.out, &head);
    Outcome {
        status: 204,
        body_bytes: 0,
        keep_alive: ex.keep_alive,
    }
}

/// The 301 to a directory's path with its slash. A browser follows it
/// under CORS too: it needs the fields on the 301 as on the answer it
/// leads to.
fn add_slash(ex: &mut Exchange<'_>, location: &str, cors: &[u8]) -> Outcome {
    let location = [("Location", location)];
    let head = Head {
        extra_lines: &[cors],
        ..ex.head(301, None, Some("text/plain; charset=utf-8"), &location)
    };
    ex.respond_with(&head, b"moved: add a trailing slash\n")
}

/// The text of a 404 (and of the 400 and 403 a refused path gets).
const CANNOT_SERVE: &str = "cannot serve that path";
