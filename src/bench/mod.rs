//! `conveyor bench`: a load generator for HTTP/1.1 (keep-alive) and HTTP/2
//! ([`h2`], on the `h2` crate), plain or over TLS ([`tls`]), on Conveyor's
//! own runtime — one green thread per connection (and per HTTP/2 stream
//! slot) — for any server. A module of
//! the `conveyor` binary, not of the library: it uses the library (the
//! runtime, the chunked decoder) through `conveyor::` like any user would.
//!
//! Every response is checked (status line, framing, byte count) and counted
//! by status; latency is recorded per response in an HDR histogram (per
//! worker, merged at the end). A run that failed says so: errors are counted
//! by class (refused, reset, timeout, bad response, fd limit) and non-2xx
//! responses by status, connections that could not be opened are reported
//! with the reason, and [`report::BenchReport::failures`] lists why the run should
//! not be trusted (the binary exits 1 when it is not empty).
//!
//! Closed loop by default (each connection sends when its last answer
//! came); `--rate` runs open loop on a timetable ([`rate`]) and reports
//! latency corrected for coordinated omission. The run also keeps a
//! per-second series ([`series`]), can follow the server's own figures
//! ([`server_status`], from its [`live_stream`]), check thresholds
//! ([`check`]), compare against an earlier run ([`baseline`]) and write the
//! distribution ([`hdr`]).
//!
//! The seams, in the order a run goes through them: [`args`] (the options),
//! [`run`](mod@run) (the runtime, the workers, the live line), [`connection`] (one
//! connection's loop, the hot path; [`h2`] for `--h2`), [`response`] (reading and framing
//! responses), [`tally`] (one worker's counts), [`counts`] and [`report`]
//! (what the run measured), [`table`] and [`schema`] (the report for
//! people, and as JSON).

mod args;
mod baseline;
mod check;
mod connection;
mod counts;
mod h2;
mod hdr;
mod live_stream;
mod rate;
mod report;
mod response;
mod run;
mod schema;
mod series;
mod server_status;
mod table;
mod tally;
mod tls;

pub(crate) use args::{parse_args, USAGE};
pub(crate) use run::run;
pub(crate) use table::finish;
