//! A rustls connection as the runtime's record layer (`runtime::Session`).

use std::io::{self, Read, Write};

use super::BUFFER_LIMIT;
use crate::runtime::Session;

/// A rustls connection, handshake done, as the runtime's record layer:
/// the server's side here, the client's in `conveyor bench` and the tests.
pub struct TlsSession(pub rustls::Connection);

impl Session for TlsSession {
    fn read_tls(&mut self, socket: &mut dyn Read) -> io::Result<usize> {
        let n = self.0.read_tls(socket)?;
        if n > 0 {
            self.0
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
        Ok(n)
    }

    fn read_plain(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.reader().read(buf)
    }

    fn write_plain(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.writer().write(buf)
    }

    fn write_plain_all(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        // One vectored write: the parts share records.
        let mut slices: Vec<io::IoSlice<'_>> = parts.iter().map(|p| io::IoSlice::new(p)).collect();
        let mut slices = &mut slices[..];
        self.0.set_buffer_limit(None);
        let mut wrote = Ok(());
        while !slices.is_empty() {
            match self.0.writer().write_vectored(slices) {
                Ok(0) if slices.iter().all(|s| s.is_empty()) => break,
                Ok(0) => wrote = Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => io::IoSlice::advance_slices(&mut slices, n),
                Err(e) => wrote = Err(e),
            }
            if wrote.is_err() {
                break;
            }
        }
        self.0.set_buffer_limit(Some(BUFFER_LIMIT));
        wrote
    }

    fn wants_write(&self) -> bool {
        self.0.wants_write()
    }

    fn write_tls(&mut self, socket: &mut dyn Write) -> io::Result<usize> {
        self.0.write_tls(socket)
    }

    fn has_plain(&mut self) -> bool {
        self.0
            .process_new_packets()
            .is_ok_and(|state| state.plaintext_bytes_to_read() > 0)
    }

    fn close(&mut self) {
        self.0.send_close_notify();
    }

    fn server_name(&self) -> Option<&str> {
        match &self.0 {
            rustls::Connection::Server(server) => server.server_name(),
            rustls::Connection::Client(_) => None,
        }
    }
}
