//! An HTTP/2 client for tests: the `h2` crate as a client, on Conveyor's
//! own runtime (`conveyor::runtime::block_on`, `AsyncStream` over a
//! `Stream`), over h2c (prior knowledge) or TLS (ALPN `h2`, a rustls client
//! session as the stream's record layer). No tokio runtime anywhere.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use conveyor::runtime::{self, AsyncStream, ReadBuffer, Stream, TcpStream};
use conveyor::tls::TlsSession;
use h2::client::SendRequest;
use h2::RecvStream;
use http::{Method, Request};
use rustls::pki_types::CertificateDer;
use rustls::ClientConfig;

use super::tls::{client, handshake, BOTH};
use super::Response;

/// Where a test's HTTP/2 client connects, and how.
#[derive(Clone)]
pub(crate) enum Target {
    /// h2c: a plain connection opening with the HTTP/2 preface.
    Cleartext(SocketAddr),
    /// TLS with ALPN `h2`, trusting the config's roots.
    Tls(SocketAddr, Arc<ClientConfig>),
    /// h2c after these bytes (a PROXY protocol header).
    After(SocketAddr, Vec<u8>),
}

impl Target {
    /// TLS to `addr` for `localhost`, trusting `roots`, offering only h2.
    pub(crate) fn tls(addr: SocketAddr, roots: &[CertificateDer<'static>]) -> Target {
        let mut config = (*client(roots, BOTH)).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Target::Tls(addr, Arc::new(config))
    }

    /// "h2c" or "h2", for messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Target::Cleartext(_) | Target::After(..) => "h2c",
            Target::Tls(..) => "h2 over TLS",
        }
    }

    fn scheme(&self) -> &'static str {
        match self {
            Target::Cleartext(_) | Target::After(..) => "http",
            Target::Tls(..) => "https",
        }
    }

    /// A connected stream, its TLS handshake (if any) done, ALPN h2 checked.
    /// Connected and shaken hands with blocking calls, then handed to the
    /// runtime.
    fn connect(&self) -> io::Result<Stream> {
        match self {
            Target::Cleartext(addr) => {
                let socket = StdStream::connect(addr)?;
                socket.set_nodelay(true)?;
                Ok(Stream::plain(TcpStream::new(socket)?))
            }
            Target::After(addr, first) => {
                let mut socket = StdStream::connect(addr)?;
                socket.set_nodelay(true)?;
                socket.write_all(first)?;
                Ok(Stream::plain(TcpStream::new(socket)?))
            }
            Target::Tls(addr, config) => {
                let socket = StdStream::connect(addr)?;
                socket.set_nodelay(true)?;
                socket.set_read_timeout(Some(Duration::from_secs(10)))?;
                let tls = handshake(socket, config, "localhost")?;
                if tls.conn.alpn_protocol() != Some(b"h2") {
                    return Err(io::Error::other("ALPN did not agree on h2"));
                }
                let (conn, socket) = tls.into_parts();
                socket.set_read_timeout(None)?;
                let mut stream = Stream::plain(TcpStream::new(socket)?);
                stream.secure(Box::new(RefCell::new(TlsSession(conn.into()))));
                Ok(stream)
            }
        }
    }
}

/// One HTTP/2 connection, driven by a green thread of the test's runtime.
#[derive(Clone)]
pub(crate) struct H2 {
    send: SendRequest<Bytes>,
    base: String,
}

/// Runs `test` with a connection to `target` on a one-worker runtime on
/// this thread, started with `builder`'s settings; Err if the connection
/// or its handshake fails.
pub(crate) fn session_with<T: 'static, F: Future<Output = T> + 'static>(
    target: &Target,
    builder: h2::client::Builder,
    test: impl FnOnce(H2) -> F + 'static,
) -> Result<T, String> {
    let target = target.clone();
    // A panic in `test` fails the test rather than leaving the runtime
    // spinning without its root green thread: caught, carried out, resumed.
    let outcome = runtime::block_on(CatchUnwind(Box::pin(async move {
        let stream = target.connect().map_err(|e| format!("connect: {e}"))?;
        let io = AsyncStream::new(stream, ReadBuffer::default());
        let (send, connection) = builder
            .handshake::<_, Bytes>(io)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let driver = runtime::spawn(async move {
            let _ = connection.await;
        });
        let h2 = H2 {
            send,
            base: format!("{}://localhost", target.scheme()),
        };
        let out = test(h2).await;
        drop(driver);
        Ok(out)
    })));
    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// A future whose panics come out as its output.
struct CatchUnwind<F>(std::pin::Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(out)) => std::task::Poll::Ready(Ok(out)),
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}

/// `session_with` the client's default settings; panics if it cannot connect.
pub(crate) fn session<T: 'static, F: Future<Output = T> + 'static>(
    target: &Target,
    test: impl FnOnce(H2) -> F + 'static,
) -> T {
    session_with(target, h2::client::Builder::new(), test)
        .unwrap_or_else(|e| panic!("{}: {e}", target.name()))
}

/// One request on a new connection: `method path`, extra fields, no body.
pub(crate) fn fetch(
    target: &Target,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let (method, path) = (method.to_string(), path.to_string());
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    session(target, move |h2| async move {
        let fields: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        h2.request(&method, &path, &fields, None)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    })
}

/// `GET path` on a new connection.
pub(crate) fn get2(target: &Target, path: &str) -> Response {
    fetch(target, "GET", path, &[])
}

impl H2 {
    /// A request head for `path` on this connection.
    pub(crate) fn head(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).expect("request")
    }

    /// Sends a request (with `body` as one DATA frame, if any) and reads
    /// its whole response.
    pub(crate) async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response, h2::Error> {
        let head = self.head(method, path, headers);
        let mut send = self.send.clone().ready().await?;
        let (answer, mut stream) = send.send_request(head, body.is_none())?;
        if let Some(body) = body {
            stream.send_data(Bytes::copy_from_slice(body), true)?;
        }
        let response = answer.await?;
        let (parts, mut body) = response.into_parts();
        let bytes = read_body(&mut body).await?;
        Ok(Response {
            status: parts.status.as_u16(),
            reason: String::new(),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: bytes,
        })
    }

    /// `GET path` with extra fields.
    pub(crate) async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", path, headers, None)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// The connection's request sender, for streaming tests.
    pub(crate) fn sender(&self) -> SendRequest<Bytes> {
        self.send.clone()
    }
}

/// Reads a body to its end, giving the window back as it goes.
pub(crate) async fn read_body(body: &mut RecvStream) -> Result<Vec<u8>, h2::Error> {
    let mut out = Vec::new();
    while let Some(data) = body.data().await {
        let data = data?;
        let _ = body.flow_control().release_capacity(data.len());
        out.extend_from_slice(&data);
    }
    Ok(out)
}
