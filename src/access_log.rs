//! The access log, in the combined log format, buffered.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::http::{Field, Request};

#[derive(Clone)]
pub(crate) struct AccessLog {
    path: Arc<str>,
    out: Arc<Mutex<BufWriter<Sink>>>,
}

/// Where the lines go: standard output, or the file at the path.
enum Sink {
    Stdout(io::Stdout),
    File(std::fs::File),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Stdout(out) => out.write(buf),
            Sink::File(file) => file.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => out.flush(),
            Sink::File(file) => file.flush(),
        }
    }
}

impl AccessLog {
    /// `-` is standard output; anything else a file opened for appending.
    pub(crate) fn open(path: &str) -> io::Result<AccessLog> {
        Ok(AccessLog {
            path: path.into(),
            out: Arc::new(Mutex::new(BufWriter::with_capacity(
                64 * 1024,
                Self::sink(path)?,
            ))),
        })
    }

    fn sink(path: &str) -> io::Result<Sink> {
        Ok(if path == "-" {
            Sink::Stdout(io::stdout())
        } else {
            Sink::File(OpenOptions::new().create(true).append(true).open(path)?)
        })
    }

    /// Gives the log file to the account the server will run as, as
    /// nginx's master does for its workers: opened as root at start, it
    /// would be root's, and a SIGUSR1 with no rotation before it (the
    /// same file opened again, as that user) would fail. On the open file
    /// itself, never by path; standard output is left alone.
    pub(crate) fn give_to(&self, uid: u32, gid: u32) -> io::Result<()> {
        let out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        match out.get_ref() {
            Sink::File(file) => std::os::unix::fs::fchown(file, Some(uid), Some(gid)),
            Sink::Stdout(_) => Ok(()),
        }
    }

    /// Where it writes: a path, or "-".
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// Writes out what is buffered, then opens the path again (logrotate
    /// has renamed the file: the next line goes to a new one at the old
    /// path). On error the old file stays in use.
    pub(crate) fn reopen(&self) -> io::Result<()> {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = out.flush();
        if &*self.path != "-" {
            *out.get_mut() = Self::sink(&self.path)?;
        }
        Ok(())
    }

    /// `host - user [time] "request line" status bytes "referer"
    /// "user-agent"`, and ` "site"` with `[[sites]]`. Every field the
    /// client wrote is escaped (see [`push_escaped`]), so a request cannot
    /// forge fields or lines. `host` is the client's IP address, "unix" or
    /// "-"; `user` the one `[[auth]]` let through, else "-" (nginx's
    /// `$remote_user`); `bytes` the response body's length.
    pub(crate) fn record(&self, who: &Who<'_>, request: RequestLine<'_>, status: u16, bytes: u64) {
        use std::fmt::Write as _;
        let mut line = String::with_capacity(160);
        let _ = write!(line, "{} - ", who.client);
        match who.user {
            // Escaped too, and a space as `\x20`: it would split the field.
            Some(user) if !user.is_empty() => {
                for (i, part) in user.split(' ').enumerate() {
                    if i > 0 {
                        line.push_str("\\x20");
                    }
                    push_escaped(&mut line, part.as_bytes());
                }
            }
            _ => line.push('-'),
        }
        let _ = write!(line, " [{}] \"", clf_time(SystemTime::now()));
        match request {
            RequestLine::Parsed(r, sent) | RequestLine::Http2(r, sent) => {
                line.push_str(r.method.as_str());
                line.push(' ');
                push_escaped(&mut line, r.target.as_bytes());
                let _ = match request {
                    RequestLine::Http2(..) => write!(line, " HTTP/2.0\" {status} {bytes} \""),
                    _ => write!(
                        line,
                        " HTTP/1.{}\" {} {} \"",
                        r.minor_version, status, bytes
                    ),
                };
                let sent = sent.unwrap_or(&Sent::NONE);
                push_escaped(&mut line, sent.referer.as_deref().unwrap_or(b"-"));
                line.push_str("\" \"");
                push_escaped(&mut line, sent.user_agent.as_deref().unwrap_or(b"-"));
                line.push('"');
            }
            RequestLine::Raw(raw) => {
                match raw.is_empty() {
                    true => line.push('-'),
                    false => push_escaped(&mut line, raw),
                }
                let _ = write!(line, "\" {} {} \"-\" \"-\"", status, bytes);
            }
        }
        if let Some(site) = who.site {
            line.push_str(" \"");
            push_escaped(&mut line, site.as_bytes());
            line.push('"');
        }
        line.push('\n');
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = out.write_all(line.as_bytes());
    }

    pub(crate) fn flush(&self) {
        let _ = self
            .out
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush();
    }
}

/// Who a line is about: the client, the user `[[auth]]` let through, and
/// the site (`None`: no site field, without `[[sites]]`).
pub(crate) struct Who<'a> {
    pub(crate) client: &'a str,
    pub(crate) user: Option<&'a str>,
    pub(crate) site: Option<&'a str>,
}

/// What the log says the request was.
pub(crate) enum RequestLine<'a> {
    /// A request that parsed: its method, target and version, and the
    /// fields copied from its preamble (`None`: none copied, `-`).
    Parsed(&'a Request, Option<&'a Sent>),
    /// A request that came on an HTTP/2 stream: logged `HTTP/2.0`, as
    /// nginx logs it.
    Http2(&'a Request, Option<&'a Sent>),
    /// One that did not (or never finished arriving): the bytes of its
    /// request line as received ([`raw_request_line`]), `-` when empty.
    Raw(&'a [u8]),
}

/// The fields the log writes that the parse only notes the place of:
/// copied out of the preamble before a service consumes it, and only when
/// there is a log.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    referer: Option<Vec<u8>>,
    user_agent: Option<Vec<u8>>,
}

impl Sent {
    const NONE: Sent = Sent {
        referer: None,
        user_agent: None,
    };

    /// `req`'s first Referer and User-Agent, as sent, from `preamble`
    /// (the bytes it was parsed from). Boxed: kept small where it waits.
    pub(crate) fn of(req: &Request, preamble: &[u8]) -> Box<Sent> {
        Box::new(Sent {
            referer: req.field(preamble, Field::Referer).map(<[u8]>::to_vec),
            user_agent: req.field(preamble, Field::UserAgent).map(<[u8]>::to_vec),
        })
    }
}

/// The longest raw request line logged: a 414's line is cut here.
const RAW_LINE_LIMIT: usize = 8192;

/// The request line at the start of `received` as sent, for the log of a
/// request that could not be parsed (nginx logs `$request` so): empty
/// lines before it skipped, without its line ending, at most
/// `RAW_LINE_LIMIT` bytes; all of `received` if no line ending came.
pub(crate) fn raw_request_line(received: &[u8]) -> &[u8] {
    let start = received
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(received.len());
    let rest = &received[start..];
    let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let line = &rest[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    &line[..line.len().min(RAW_LINE_LIMIT)]
}

/// Appends `s` with `"`, `\\`, control bytes and every byte outside
/// printable ASCII written as `\\xHH`, as nginx does: a quote cannot close a
/// field, a newline cannot start a forged line, an escape sequence cannot
/// reach a terminal, and the log stays ASCII whatever the client sent
/// (bytes that are not UTF-8 too: each is itself, never U+FFFD).
fn push_escaped(out: &mut String, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let clean = |b: u8| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\';
    // Almost every field is clean: one scan, one copy.
    if s.iter().all(|&b| clean(b)) {
        out.extend(s.iter().map(|&b| char::from(b)));
        return;
    }
    for &b in s {
        if clean(b) {
            out.push(char::from(b));
        } else {
            out.push_str("\\x");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// `10/Oct/2000:13:55:36 +0000` (UTC).
fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        push_escaped(&mut out, s.as_bytes());
        out
    }

    #[test]
    fn client_fields_are_escaped() {
        assert_eq!(escaped("/index.html?a=b&c=%22"), "/index.html?a=b&c=%22");
        assert_eq!(escaped(""), "");
        assert_eq!(escaped("a\"b"), "a\\x22b");
        assert_eq!(escaped("a\\b"), "a\\x5Cb");
        assert_eq!(escaped("\\\""), "\\x5C\\x22");
        assert_eq!(
            escaped("x\r\ny\t\x00\x1b[31m\x7f"),
            "x\\x0D\\x0Ay\\x09\\x00\\x1B[31m\\x7F"
        );
        assert_eq!(escaped("caf\u{e9}"), "caf\\xC3\\xA9");
        // Bytes that are not UTF-8 are themselves, never U+FFFD.
        let mut raw = String::new();
        push_escaped(&mut raw, b"a\xff\xfeb");
        assert_eq!(raw, "a\\xFF\\xFEb");
    }

    /// The record for a request whose target, Referer and User-Agent try to
    /// close their quotes and add fields or a line of their own.
    #[test]
    fn a_forged_request_stays_one_line_of_nine_fields() {
        let dir = std::env::temp_dir().join(format!("conveyor-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("access.log");
        let log = AccessLog::open(path.to_str().expect("utf-8 path")).expect("open");
        // A '"' in the target is refused by the parser (400), so the
        // target tries a backslash and non-ASCII only.
        let raw = b"GET /a\\x\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\
            Referer: r\" \"forged\r\nUser-Agent: ua\\\" 999 \xc3\xa9\r\n\r\n";
        let limits = crate::http::Limits {
            max_request_line: 8192,
            max_header_bytes: 8192,
            max_headers: 100,
        };
        let req = crate::http::parse_request(raw, &limits)
            .expect("parses")
            .expect("complete");
        let who = |client| Who {
            client,
            user: None,
            site: None,
        };
        let sent = Sent::of(&req, raw);
        log.record(
            &who("127.0.0.1"),
            RequestLine::Parsed(&req, Some(&sent)),
            200,
            5,
        );
        log.record(&who("-"), RequestLine::Raw(b""), 408, 0);
        log.record(&who("-"), RequestLine::Raw(b"\x16\x03\x01\xff\"x"), 400, 45);
        // A user and a site, escaped like the rest.
        let named = Who {
            client: "192.0.2.1",
            user: Some("al ice\"\u{e9}"),
            site: Some("a.example"),
        };
        log.record(&named, RequestLine::Raw(b"GET / HTTP/1.1"), 200, 1);
        log.flush();
        let text = std::fs::read_to_string(&path).expect("read log");
        std::fs::remove_dir_all(&dir).expect("clean up");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[3].starts_with("192.0.2.1 - al\\x20ice\\x22\\xC3\\xA9 ["),
            "{}",
            lines[3]
        );
        assert!(
            lines[3].ends_with("\"GET / HTTP/1.1\" 200 1 \"-\" \"-\" \"a.example\""),
            "{}",
            lines[3]
        );
        let first = lines[0];
        assert!(
            first.ends_with(
                "\"GET /a\\x5Cx\\xC3\\xA9 HTTP/1.1\" 200 5 \
                 \"r\\x22 \\x22forged\" \"ua\\x5C\\x22 999 \\xC3\\xA9\""
            ),
            "{first}"
        );
        // Exactly three quoted fields: six unescaped quotes.
        assert_eq!(first.matches('"').count(), 6, "{first}");
        assert!(lines[1].starts_with("- - - ["), "{}", lines[1]);
        assert!(
            lines[1].ends_with("] \"-\" 408 0 \"-\" \"-\""),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].ends_with("] \"\\x16\\x03\\x01\\xFF\\x22x\" 400 45 \"-\" \"-\""),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn the_raw_request_line_is_the_first_line_as_sent() {
        assert_eq!(raw_request_line(b""), b"");
        assert_eq!(
            raw_request_line(b"\r\n\r\nGET /a\xff HTTP/1.1\r\nHost: x\r\n"),
            b"GET /a\xff HTTP/1.1"
        );
        assert_eq!(raw_request_line(b"GET / HTTP/1.1\nX"), b"GET / HTTP/1.1");
        assert_eq!(raw_request_line(b"\x16\x03\x01\x00"), b"\x16\x03\x01\x00");
        assert_eq!(raw_request_line(&[b'a'; 10_000]).len(), RAW_LINE_LIMIT);
    }

    #[test]
    fn clf_time_formats_utc() {
        let t = UNIX_EPOCH + Duration::from_secs(971_186_136);
        assert_eq!(clf_time(t), "10/Oct/2000:13:55:36 +0000");
        assert_eq!(clf_time(UNIX_EPOCH), "01/Jan/1970:00:00:00 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(1_709_164_800); // 2024-02-29
        assert_eq!(clf_time(leap), "29/Feb/2024:00:00:00 +0000");
    }
}
