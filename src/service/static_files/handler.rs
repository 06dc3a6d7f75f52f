//! The static-file service (nginx's static module in spirit): resolve the
//! path, check preconditions and ranges, then answer from the cache or from
//! disk. The cache, the lookup and the sending each have their own file.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::config::{LogLevel, StaticConfig};
use crate::http::Method;
use crate::runtime::beneath::RootDir;
use crate::runtime::{self, read_seq_now};
use crate::service::{Exchange, Outcome};

use super::cache::Cache;
use super::lookup::Lookup;
use super::resolve::log_refusal;
use super::send::not_modified;
use super::{
    evaluate, parse_range, unsatisfied_range, Decision, Preconditions, RangeOutcome, ResolveOptions,
};

/// Serves the files under a root directory, with one in-memory cache per worker.
pub struct StaticFiles {
    /// Files are opened beneath this descriptor, never by a path.
    pub(super) root: RootDir,
    pub(super) options: ResolveOptions,
    pub(super) config: StaticConfig,
    /// One cache per worker: no lock contention, at the price of a copy each.
    pub(super) caches: Vec<Arc<Mutex<Cache>>>,
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
            config: config.clone(),
            caches: (0..workers.max(1)).map(|_| Arc::default()).collect(),
        })
    }

    /// Answers GET or HEAD with the file at the request path (200, 206, 304,
    /// 301 to add a slash, or an error); 405 for other methods.
    pub async fn serve(&self, ex: &mut Exchange<'_>) -> Outcome {
        ex.consume_preamble();
        if !matches!(ex.req.method, Method::Get | Method::Head) {
            return ex.error(
                405,
                "static files answer GET and HEAD",
                &[("Allow", "GET, HEAD")],
            );
        }
        let received = ex.input.received_seq();
        let mut found = self.lookup(ex.req.path(), ex.req.query(), received);
        if let Ok(Lookup::Unsynced) = found {
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
            found = self.lookup(ex.req.path(), ex.req.query(), received);
        }
        let (info, body) = match found {
            Ok(Lookup::Found(info, body)) => (info, body),
            // After a sync, watched entries were read before the request
            // was, or are gone: cannot happen.
            Ok(Lookup::Unsynced) => return ex.error(503, "cache busy, retry", &[]),
            Ok(Lookup::Redirect(location)) => {
                return ex.respond(
                    301,
                    "text/plain; charset=utf-8",
                    b"moved: add a trailing slash\n",
                    &[("Location", &location)],
                )
            }
            Err(e) => {
                if ex.ctx.config.log.level == LogLevel::Debug {
                    log_refusal(ex.req.method.as_str(), ex.req.path(), e);
                }
                return ex.error(e.status(), "cannot serve that path", &[]);
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
}

/// Requests read since the last read of the inotify queue beyond which the
/// next one reads it at once rather than waiting for the rest of the turn.
const SYNC_BATCH: u64 = 32;
