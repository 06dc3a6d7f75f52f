//! Sending a file: the head (prebuilt for a whole 200), then the body from
//! memory, copied from disk, or with sendfile, never as another version
//! than the head describes.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::http::{write_head, Head, Method};
use crate::runtime::timeout;
use crate::service::{Exchange, Outcome, Writing};

use super::cache::{Body, FileInfo, Version};
use super::content_range;
use super::headers::without_overridden;
use super::negotiate::Encoding;

/// One response carrying a file: which bytes, under which status, with
/// which fields of its own beyond the file's.
pub(super) struct Reply<'a> {
    /// 206, or 200 or an error page's status for the whole file.
    pub(super) status: u16,
    /// The bytes sent: `start..end`.
    pub(super) start: u64,
    pub(super) end: u64,
    /// An error's fields (for an error page), usually none.
    pub(super) extra: &'a [(&'a str, &'a str)],
    /// CORS lines, usually none.
    pub(super) cors: &'a [u8],
}

/// Sends `reply`'s bytes of the file: from memory, copied from disk below
/// `sendfile_min_size`, else with sendfile.
pub(super) async fn send(
    ex: &mut Exchange<'_>,
    info: &FileInfo,
    body: &Body,
    reply: Reply<'_>,
    sendfile_min_size: u64,
) -> Outcome {
    match send_now(ex, info, body, reply) {
        Sent::Done(outcome) => outcome,
        Sent::FromDisk(outcome, file, start) => {
            send_rest(ex, info, file, start, outcome, sendfile_min_size).await
        }
    }
}

/// What [`send_now`] did: all of it, or the head, the disk's bytes to come.
pub(super) enum Sent<'b> {
    Done(Outcome),
    /// The file's `outcome.body_bytes` bytes from `start` are still to send.
    FromDisk(Outcome, &'b Arc<File>, u64),
}

/// Writes the head and, from memory, the bytes: a cache hit's whole answer
/// without a future (callgrind); a body on disk is left to [`send_rest`].
#[inline(always)]
pub(super) fn send_now<'b>(
    ex: &mut Exchange<'_>,
    info: &FileInfo,
    body: &'b Body,
    reply: Reply<'_>,
) -> Sent<'b> {
    let Reply {
        status,
        start,
        end,
        extra,
        cors,
    } = reply;
    let count = end - start;
    let is_head = ex.req.method == Method::Head;
    if status != 206 {
        // The fast path: the fields prebuilt with the cache entry, and
        // usually no CORS lines (then none to loop over).
        let cors_lines = [cors];
        let head = Head {
            prebuilt: &info.head_fields,
            extra_lines: &cors_lines[..usize::from(!cors.is_empty())],
            ..ex.head(status, Some(count), None, extra)
        };
        write_head(ex.out, &head);
    } else {
        partial_head(ex, info, start, end, count, cors);
    }
    let mut outcome = Outcome {
        status,
        body_bytes: if is_head { 0 } else { count },
        keep_alive: ex.keep_alive,
    };
    if is_head || count == 0 {
        return Sent::Done(outcome);
    }
    match body {
        // `bytes` is exactly the version the head describes; the check
        // only keeps a bug from becoming a panic.
        Body::Memory(bytes) => match bytes.get(start as usize..end as usize) {
            Some(range) => ex.out.extend_from_slice(range),
            None => outcome.keep_alive = false,
        },
        Body::Disk(file) => return Sent::FromDisk(outcome, file, start),
    }
    Sent::Done(outcome)
}

/// The head of a 206: built per response, its Content-Range its own.
fn partial_head(
    ex: &mut Exchange<'_>,
    info: &FileInfo,
    start: u64,
    end: u64,
    count: u64,
    cors: &[u8],
) {
    let range = content_range(start, end - 1, info.version.len);
    let encoding = info.encoding.map(Encoding::token);
    let extra = [
        ("Content-Range", range.as_str()),
        ("ETag", info.validators.etag.as_str()),
        ("Last-Modified", info.last_modified.as_str()),
        ("Accept-Ranges", "bytes"),
        // An encoded representation always varies: Vary first.
        ("Vary", "Accept-Encoding"),
        ("Content-Encoding", encoding.unwrap_or_default()),
    ];
    let used = 4 + usize::from(info.vary) + usize::from(encoding.is_some());
    let extra = without_overridden(info, &extra[..used]);
    let head = Head {
        extra_lines: &[&info.rule_fields, cors],
        ..ex.head(206, Some(count), Some(&info.content_type), &extra)
    };
    write_head(ex.out, &head);
}

/// The bytes [`send_now`] left on disk, after the head it wrote.
pub(super) async fn send_rest(
    ex: &mut Exchange<'_>,
    info: &FileInfo,
    file: &File,
    start: u64,
    mut outcome: Outcome,
    sendfile_min_size: u64,
) -> Outcome {
    // Boxed: rare next to cache hits, and big.
    let count = outcome.body_bytes;
    let sent = Box::pin(send_from_disk(
        ex,
        info,
        file,
        start,
        count,
        sendfile_min_size,
    ));
    if sent.await.is_err() {
        outcome.keep_alive = false;
    }
    outcome
}

async fn send_from_disk(
    ex: &mut Exchange<'_>,
    info: &FileInfo,
    file: &File,
    start: u64,
    count: u64,
    sendfile_min_size: u64,
) -> std::io::Result<()> {
    if count < sendfile_min_size {
        // Small enough to copy: it leaves with the head in one write.
        let mut chunk = vec![0; count as usize];
        file.read_exact_at(&mut chunk, start)?;
        // Read after the head was built: send it only if the file is
        // still the version the head describes.
        if Version::of(&file.metadata()?) != info.version {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        ex.out.extend_from_slice(&chunk);
        return Ok(());
    }
    ex.flush_more().await?;
    let _writing = Writing::new(ex.ctx.metrics.here());
    let limit = ex.ctx.config.timeouts.write;
    let mut offset = start;
    let end = start + count;
    while offset < end {
        let want = usize::try_from(end - offset)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        let sent = timeout(limit, ex.stream.sendfile(file, &mut offset, want)).await??;
        if sent == 0 {
            // The file shrank under us: the promised length cannot be met.
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        ex.ctx.metrics.here().bytes_out.add_local(sent as u64);
    }
    Ok(())
}

pub(super) fn not_modified(ex: &mut Exchange<'_>, info: &FileInfo, cors: &[u8]) -> Outcome {
    let extra = [
        ("ETag", info.validators.etag.as_str()),
        ("Last-Modified", info.last_modified.as_str()),
        ("Vary", "Accept-Encoding"),
    ];
    let extra = without_overridden(info, &extra[..2 + usize::from(info.vary)]);
    let head = Head {
        extra_lines: &[&info.rule_fields, cors],
        ..ex.head(304, None, None, &extra)
    };
    write_head(ex.out, &head);
    Outcome {
        status: 304,
        body_bytes: 0,
        keep_alive: ex.keep_alive,
    }
}
