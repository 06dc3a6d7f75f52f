//! Directory listings (`static.listing`): HTML (no script) or JSON, for a
//! directory without an index file. The directory is opened beneath the
//! root like any file, read from that descriptor, and each entry stat'ed
//! relative to it; dotfiles and the symlink policy apply as they do to
//! serving. Up to `SORT_LIMIT` entries are sorted; a bigger directory is
//! streamed in directory order, in chunks, yielding between batches so the
//! worker's other connections keep being served, in bounded memory.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::http::chunked::{push_chunk, CHUNKED_FIELD, LAST_CHUNK};
use crate::http::date::fmt_http_date;
use crate::http::json::push_json_string;
use crate::http::uri::{percent_decode, percent_encode};
use crate::http::{write_head, Head, Method};
use crate::runtime::sys::beneath::{RootDir, Symlinks};
use crate::runtime::sys::dir::{stat_at, DirReader, EntryMeta, Kind};
use crate::runtime::{self};
use crate::service::{Exchange, Outcome};

use super::resolve::relative_path;
use super::ResolveOptions;

/// Entries read from the directory between two yields.
const BATCH: usize = 1024;
/// Directories with at most this many entries are sorted; bigger ones are
/// streamed as read, so memory stays bounded whatever the directory holds.
const SORT_LIMIT: usize = 10_000;
/// Output bytes gathered before a chunk is sent.
const CHUNK: usize = 32 * 1024;

/// One entry as listed.
struct Item {
    name: OsString,
    meta: EntryMeta,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SortBy {
    Name,
    Size,
    Time,
}

/// What the query string asks for.
struct View {
    sort: SortBy,
    descending: bool,
    json: bool,
}

impl View {
    fn parse(query: Option<&str>, json: bool) -> View {
        let mut view = View {
            sort: SortBy::Name,
            descending: false,
            json,
        };
        for pair in query.unwrap_or("").split('&') {
            match pair {
                "sort=size" => view.sort = SortBy::Size,
                "sort=time" => view.sort = SortBy::Time,
                "sort=name" => view.sort = SortBy::Name,
                "order=desc" => view.descending = true,
                "order=asc" => view.descending = false,
                "format=json" => view.json = true,
                "format=html" => view.json = false,
                _ => {}
            }
        }
        view
    }
}

/// Why a directory is not listed: the error response to answer with.
pub(super) struct Refusal {
    pub(super) status: u16,
    pub(super) message: &'static str,
}

const CANNOT_LIST: Refusal = Refusal {
    status: 404,
    message: "cannot list that path",
};

const CANNOT_READ: Refusal = Refusal {
    status: 403,
    message: "cannot read that directory",
};

/// `_redirects` or `_headers`.
fn is_site_file(name: &OsString) -> bool {
    name == crate::config::REDIRECTS_FILE || name == crate::config::HEADERS_FILE
}

/// Lists the directory at the request path, which `resolve` accepted and
/// found to be a directory without its index file; `cors` are header
/// lines for the response. Err before anything is written.
pub(super) async fn list(
    ex: &mut Exchange<'_>,
    root: &RootDir,
    options: &ResolveOptions,
    json: bool,
    cors: &[u8],
) -> Result<Outcome, Refusal> {
    let dir = Dir::open(root, options, ex.req.path())?;
    let mut reader = DirReader::new(&dir.file).map_err(|_| CANNOT_READ)?;
    let view = View::parse(ex.req.query(), json);
    let (items, complete) = dir.first_entries(&mut reader, &view).await?;
    // HTTP/1.0 has no chunks: the body ends when the connection does.
    let chunked = ex.req.minor_version > 0;
    if !chunked {
        ex.keep_alive = false;
    }
    write_list_head(ex, view.json, chunked, cors);
    let mut outcome = Outcome {
        status: 200,
        body_bytes: 0,
        keep_alive: ex.keep_alive,
    };
    if ex.req.method == Method::Head {
        return Ok(outcome);
    }
    let mut page = Page {
        out: Vec::with_capacity(CHUNK + 4096),
        json: view.json,
        first: true,
        sent: 0,
        chunked,
    };
    let url_path = ex.req.path().to_string();
    page.start(&url_path, &view, complete);
    for item in &items {
        page.item(item);
    }
    drop(items);
    let ended = match page.flush(ex, false).await {
        Ok(()) => complete || dir.stream_rest(ex, &mut reader, &mut page).await,
        Err(_) => {
            outcome.keep_alive = false;
            return Ok(outcome);
        }
    };
    if !ended {
        // Cut short: no last chunk, so the client knows.
        outcome.keep_alive = false;
        ex.keep_alive = false;
        outcome.body_bytes = page.sent;
        return Ok(outcome);
    }
    page.end();
    let last = page.flush(ex, true).await;
    outcome.body_bytes = page.sent;
    outcome.keep_alive &= last.is_ok();
    Ok(outcome)
}

/// The head of a listing: no length (chunked, or to the close in HTTP/1.0).
fn write_list_head(ex: &mut Exchange<'_>, json: bool, chunked: bool, cors: &[u8]) {
    let content_type = match json {
        true => "application/json",
        false => "text/html; charset=utf-8",
    };
    let extra: &[(&str, &str)] = match chunked {
        true => &[
            CHUNKED_FIELD,
            ("Vary", "Accept"),
            ("Cache-Control", "no-cache"),
        ],
        false => &[("Vary", "Accept"), ("Cache-Control", "no-cache")],
    };
    let head = Head {
        extra_lines: &[cors],
        ..ex.head(200, None, Some(content_type), extra)
    };
    write_head(ex.out, &head);
}

/// A directory being listed, opened beneath the root.
struct Dir<'a> {
    root: &'a RootDir,
    options: &'a ResolveOptions,
    file: File,
    /// Its path beneath the root.
    relative: PathBuf,
}

impl<'a> Dir<'a> {
    /// The directory `url_path` names, by the rules `resolve` applies.
    fn open(
        root: &'a RootDir,
        options: &'a ResolveOptions,
        url_path: &str,
    ) -> Result<Dir<'a>, Refusal> {
        let (relative, _) = relative_path(url_path, options).map_err(|_| CANNOT_LIST)?;
        match root.open_beneath(&relative, options.symlinks()) {
            Ok(opened) if opened.file.metadata().is_ok_and(|m| m.is_dir()) => Ok(Dir {
                root,
                options,
                file: opened.file,
                relative,
            }),
            _ => Err(CANNOT_LIST),
        }
    }

    /// Up to `SORT_LIMIT` entries (all of them, in most cases), sorted
    /// when that is all; true when it is.
    async fn first_entries(
        &self,
        reader: &mut DirReader,
        view: &View,
    ) -> Result<(Vec<Item>, bool), Refusal> {
        let mut items = Vec::new();
        while items.len() <= SORT_LIMIT {
            match reader.next_names(BATCH) {
                Ok(names) if names.is_empty() => {
                    sort(&mut items, view);
                    return Ok((items, true));
                }
                Ok(names) => items.extend(self.listable(names)),
                Err(_) => return Err(CANNOT_READ),
            }
            runtime::yield_now().await;
        }
        Ok((items, false))
    }

    /// Streams the entries past the first `SORT_LIMIT`, in directory
    /// order, a batch at a time; true when the directory was read to its
    /// end (a failed send then shows at the last chunk).
    async fn stream_rest(
        &self,
        ex: &mut Exchange<'_>,
        reader: &mut DirReader,
        page: &mut Page,
    ) -> bool {
        loop {
            let complete = match reader.next_names(BATCH) {
                Ok(names) if names.is_empty() => true,
                Ok(names) => {
                    for item in self.listable(names) {
                        page.item(&item);
                    }
                    false
                }
                Err(_) => return false,
            };
            if page.flush(ex, false).await.is_err() {
                return complete;
            }
            // Let the worker's other connections in between batches.
            runtime::yield_now().await;
            if complete {
                return true;
            }
        }
    }

    /// The entries of a batch that may be listed: no dotfiles unless shown,
    /// only files and directories, symlinks only where they may be followed
    /// (and then as what they point to).
    fn listable(&self, names: Vec<OsString>) -> Vec<Item> {
        let show_dotfiles = self.options.show_dotfiles;
        let at_root = self.relative.as_os_str().is_empty();
        let symlinks = self.options.symlinks();
        names
            .into_iter()
            .filter(|name| show_dotfiles || !name.as_bytes().starts_with(b"."))
            .filter(|name| !(at_root && self.options.hide_site_files && is_site_file(name)))
            .filter_map(|name| {
                let mut meta = stat_at(&self.file, &name, false).ok()?;
                if meta.kind == Kind::Symlink {
                    meta = match symlinks {
                        Symlinks::Anywhere => stat_at(&self.file, &name, true).ok()?,
                        // Listed only if serving it would follow it: opened
                        // as a request would open it, confined the same way.
                        _ => {
                            let opened = self
                                .root
                                .open_in(&self.file, &self.relative, name.to_str()?, symlinks)
                                .ok()?;
                            let m = opened.file.metadata().ok()?;
                            EntryMeta {
                                kind: if m.is_dir() { Kind::Dir } else { Kind::File },
                                size: m.len(),
                                mtime: std::os::unix::fs::MetadataExt::mtime(&m),
                            }
                        }
                    };
                }
                matches!(meta.kind, Kind::File | Kind::Dir).then_some(Item { name, meta })
            })
            .collect()
    }
}

fn sort(items: &mut [Item], view: &View) {
    items.sort_by(|a, b| {
        // Directories first, whatever the order.
        let dirs_first = (b.meta.kind == Kind::Dir).cmp(&(a.meta.kind == Kind::Dir));
        let by = match view.sort {
            SortBy::Name => a.name.cmp(&b.name),
            SortBy::Size => a.meta.size.cmp(&b.meta.size).then(a.name.cmp(&b.name)),
            SortBy::Time => a.meta.mtime.cmp(&b.meta.mtime).then(a.name.cmp(&b.name)),
        };
        dirs_first.then(if view.descending { by.reverse() } else { by })
    });
}

/// The listing's text, sent in chunks.
struct Page {
    out: Vec<u8>,
    json: bool,
    /// No entry written yet (JSON commas).
    first: bool,
    /// Body bytes sent so far.
    sent: u64,
    chunked: bool,
}

impl Page {
    fn start(&mut self, url_path: &str, view: &View, sorted: bool) {
        let shown =
            String::from_utf8_lossy(&percent_decode(url_path.as_bytes()).unwrap_or_default())
                .into_owned();
        if self.json {
            self.out.extend_from_slice(b"{\"path\":");
            push_json_string(&mut self.out, &shown);
            let _ = write!(self.out, ",\"sorted\":{sorted},\"entries\":[");
            return;
        }
        let title = html_escape(&shown);
        let _ = write!(
            self.out,
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width\">\
             <title>Index of {title}</title>\
             <style>body{{font-family:sans-serif}}td{{padding:0 1em 0 0}}\
             td.n{{text-align:right}}</style></head>\n\
             <body><h1>Index of {title}</h1>\n"
        );
        if !sorted {
            let _ = writeln!(
                self.out,
                "<p>More than {SORT_LIMIT} entries: shown in directory order.</p>"
            );
        }
        let link = |by: &str, label: &str| {
            // The column sorted by now links to the other order.
            let current = match view.sort {
                SortBy::Name => "name",
                SortBy::Size => "size",
                SortBy::Time => "time",
            };
            let desc = current == by && !view.descending;
            let order = if desc { "desc" } else { "asc" };
            format!("<a href=\"?sort={by}&amp;order={order}\">{label}</a>")
        };
        let _ = write!(
            self.out,
            "<table>\n<tr><th>{}</th><th>{}</th><th>{}</th></tr>\n",
            link("name", "Name"),
            link("size", "Size"),
            link("time", "Modified")
        );
        if url_path != "/" {
            self.out.extend_from_slice(
                b"<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n",
            );
        }
    }

    fn item(&mut self, item: &Item) {
        let name = String::from_utf8_lossy(item.name.as_bytes());
        let is_dir = item.meta.kind == Kind::Dir;
        if self.json {
            if !self.first {
                self.out.push(b',');
            }
            self.out.extend_from_slice(b"\n{\"name\":");
            push_json_string(&mut self.out, &name);
            let kind = if is_dir { "dir" } else { "file" };
            let _ = write!(
                self.out,
                ",\"type\":\"{kind}\",\"size\":{},\"mtime\":{}}}",
                item.meta.size, item.meta.mtime
            );
        } else {
            // "./" first: a name like "javascript:x" stays a relative link.
            self.out.extend_from_slice(b"<tr><td><a href=\"./");
            percent_encode(&mut self.out, item.name.as_bytes());
            let slash = if is_dir { "/" } else { "" };
            // Human units here; the exact count in the cell's title (and
            // in the JSON listing).
            let size = match is_dir {
                true => "-".to_string(),
                false => format!(
                    "<span title=\"{} bytes\">{}</span>",
                    item.meta.size,
                    human_size(item.meta.size)
                ),
            };
            let time = u64::try_from(item.meta.mtime)
                .map(|s| fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s)))
                .unwrap_or_default();
            let _ = writeln!(
                self.out,
                "{slash}\">{}{slash}</a></td><td class=\"n\">{size}</td><td>{time}</td></tr>",
                html_escape(&name)
            );
        }
        self.first = false;
    }

    fn end(&mut self) {
        match self.json {
            true => self.out.extend_from_slice(b"\n]}\n"),
            false => self.out.extend_from_slice(b"</table>\n</body></html>\n"),
        }
    }

    /// Sends what was gathered as one chunk; `last` adds the last chunk.
    async fn flush(&mut self, ex: &mut Exchange<'_>, last: bool) -> std::io::Result<()> {
        let before = ex.out.len();
        match self.chunked {
            true => push_chunk(ex.out, &self.out),
            false => ex.out.extend_from_slice(&self.out),
        }
        self.out.clear();
        if last && self.chunked {
            ex.out.extend_from_slice(LAST_CHUNK);
        }
        self.sent += (ex.out.len() - before) as u64;
        ex.flush().await
    }
}

/// A size as people read it: `512 B`, `1.5 KiB`, `23 MiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match value < 10.0 {
        true => format!("{value:.1} {}", UNITS[unit]),
        false => format!("{value:.0} {}", UNITS[unit]),
    }
}

/// The characters that reorder the text around them (Unicode's bidi
/// controls): in a name they would let `evil\u{202E}gpj.exe` read as
/// `evilexe.jpg`.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Text for HTML: markup characters as entities, control characters
/// (a newline in a name) shown as `\xHH`, bidi controls as `\u{HHHH}`
/// text, so no name can reorder what is shown.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if is_bidi_control(c) => out.push_str(&format!("\\u{{{:04X}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_human_units() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(20 * 1024 * 1024), "20 MiB");
        assert_eq!(human_size(u64::MAX), "16 EiB");
    }

    #[test]
    fn escapes_hold_any_name() {
        assert_eq!(
            html_escape("<a href=\"x\">'&\n"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;\\x0a"
        );
        assert_eq!(
            html_escape("evil\u{202E}gpj.exe \u{2066}\u{200F}\u{061C}"),
            "evil\\u{202E}gpj.exe \\u{2066}\\u{200F}\\u{061C}"
        );
        let mut out = Vec::new();
        push_json_string(&mut out, "a\"\\\n<\u{fffd}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"\\\\\\u000a\\u003c\u{fffd}\""
        );
    }
}
