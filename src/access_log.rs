//! The access log, in the combined log format, buffered.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::http::Request;

#[derive(Clone)]
pub struct AccessLog {
    out: Arc<Mutex<BufWriter<Box<dyn Write + Send>>>>,
}

impl AccessLog {
    /// `-` is standard output; anything else a file opened for appending.
    pub fn open(path: &str) -> io::Result<AccessLog> {
        let sink: Box<dyn Write + Send> = if path == "-" {
            Box::new(io::stdout())
        } else {
            Box::new(OpenOptions::new().create(true).append(true).open(path)?)
        };
        Ok(AccessLog {
            out: Arc::new(Mutex::new(BufWriter::with_capacity(64 * 1024, sink))),
        })
    }

    /// `host - - [time] "request line" status bytes "referer" "user-agent"`.
    pub fn record(&self, peer: Option<SocketAddr>, req: Option<&Request>, status: u16, bytes: u64) {
        let host = peer.map_or_else(|| "-".to_string(), |p| p.ip().to_string());
        let line = match req {
            Some(r) => format!(
                "{} - - [{}] \"{} {} HTTP/1.{}\" {} {} \"{}\" \"{}\"\n",
                host,
                clf_time(SystemTime::now()),
                r.method.as_str(),
                r.target,
                r.minor_version,
                status,
                bytes,
                escape(r.referer.as_deref().unwrap_or("-")),
                escape(r.user_agent.as_deref().unwrap_or("-")),
            ),
            None => format!(
                "{} - - [{}] \"-\" {} {} \"-\" \"-\"\n",
                host,
                clf_time(SystemTime::now()),
                status,
                bytes
            ),
        };
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = out.write_all(line.as_bytes());
    }

    pub fn flush(&self) {
        let _ = self
            .out
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush();
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
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

    #[test]
    fn clf_time_formats_utc() {
        let t = UNIX_EPOCH + Duration::from_secs(971_186_136);
        assert_eq!(clf_time(t), "10/Oct/2000:13:55:36 +0000");
        assert_eq!(clf_time(UNIX_EPOCH), "01/Jan/1970:00:00:00 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(1_709_164_800); // 2024-02-29
        assert_eq!(clf_time(leap), "29/Feb/2024:00:00:00 +0000");
    }
}
