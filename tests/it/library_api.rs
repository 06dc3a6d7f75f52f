//! Stages swapped from the library API: a user-written dispatcher and
//! handler drop into the line and serve real sockets; a user-written
//! service mounts beside the built-in routes.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::harness::*;
use conveyor::runtime::Handle;
use conveyor::service::{Exchange, Service, ServiceFuture};
use conveyor::stages::{Conn, Dispatcher, Handler, HandlerFuture, Line};
use conveyor::Server;

/// One handler green thread per worker, counting what it dispatches.
struct OneAtATime {
    dispatched: Arc<AtomicUsize>,
}

impl Dispatcher for OneAtATime {
    fn name(&self) -> &str {
        "one-at-a-time"
    }

    fn start(&self, runtime: &Handle, line: &Arc<Line>, handler: Arc<dyn Handler>) {
        for worker in 0..runtime.workers() {
            let (line, handler) = (line.clone(), handler.clone());
            let dispatched = self.dispatched.clone();
            runtime
                .spawn_local_on(worker, move || async move {
                    loop {
                        let conn = line.pending[worker].pop().await;
                        dispatched.fetch_add(1, Ordering::SeqCst);
                        handler.handle(conn, &line).await;
                    }
                })
                .detach();
        }
    }
}

/// A handler that answers every connection with a fixed text and closes.
struct Teapot;

impl Handler for Teapot {
    fn name(&self) -> &str {
        "teapot"
    }

    fn handle<'a>(&'a self, conn: Conn, _line: &'a Line) -> HandlerFuture<'a> {
        HandlerFuture::new(async move {
            let reply =
                b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 5\r\nConnection: close\r\n\r\nshort";
            let _ = conn.stream.write_all(reply).await;
        })
    }
}

#[test]
fn a_user_dispatcher_serves_every_request_and_shows_in_status() {
    let dispatched = Arc::new(AtomicUsize::new(0));
    let root = temp_dir("library-dispatcher");
    copy_www(&root);
    let config = test_config(&root, "readiness", "spawn");
    let server = Server::builder(config)
        .dispatcher(Arc::new(OneAtATime {
            dispatched: dispatched.clone(),
        }))
        .start()
        .expect("starts");
    let mut stream = std::net::TcpStream::connect(server.local_addr()).expect("connect");
    for _ in 0..5 {
        assert_eq!(get(&mut stream, "/").status, 200);
    }
    let status = get(&mut stream, "/status").text();
    assert!(
        status.contains("\"dispatcher\":\"one-at-a-time\""),
        "{status}"
    );
    // A fresh connection, then each recycled keep-alive request.
    assert!(dispatched.load(Ordering::SeqCst) >= 6);
    server.shutdown();
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_user_handler_replaces_http() {
    let root = temp_dir("library-handler");
    let config = test_config(&root, "reuseport", "pool");
    let server = Server::builder(config)
        .handler(Arc::new(Teapot))
        .start()
        .expect("starts");
    let mut stream = std::net::TcpStream::connect(server.local_addr()).expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let response = read_response(&mut stream);
    assert_eq!(
        (response.status, response.body.as_slice()),
        (418, &b"short"[..])
    );
    server.shutdown();
    let _ = std::fs::remove_dir_all(&root);
}

/// A health check a library user mounts: 200 "ok" while running, 503 once
/// the server is stopping; counts what it answers.
struct Healthz {
    served: AtomicUsize,
}

impl Service for Healthz {
    fn serve<'a>(&'a self, ex: &'a mut Exchange<'_>) -> ServiceFuture<'a> {
        ServiceFuture::new(async move {
            self.served.fetch_add(1, Ordering::SeqCst);
            if ex.ctx.shutdown.is_set() {
                return ex.error(503, "stopping", &[]);
            }
            let body = format!("ok {}\n", ex.ctx.config.workers);
            ex.respond(200, "text/plain", body.as_bytes(), &[])
        })
    }
}

/// Answers every path under its prefix with the path it was asked for.
struct Under;

impl Service for Under {
    fn serve<'a>(&'a self, ex: &'a mut Exchange<'_>) -> ServiceFuture<'a> {
        ServiceFuture::new(async move {
            let path = ex.req.path().to_string();
            ex.respond(200, "text/plain", path.as_bytes(), &[])
        })
    }
}

#[test]
fn a_mounted_service_answers_beside_the_built_in_routes() {
    let root = temp_dir("library-route");
    copy_www(&root);
    let index = std::fs::read(root.join("index.html")).expect("index.html");
    for (acceptor, dispatcher) in [("readiness", "spawn"), ("reuseport", "pool")] {
        let healthz = Arc::new(Healthz {
            served: AtomicUsize::new(0),
        });
        let mut config = test_config(&root, acceptor, dispatcher);
        config.workers = 2;
        let server = Server::builder(config)
            .route("/healthz", healthz.clone())
            .route("/api/*", Arc::new(Under))
            .start()
            .expect("starts");
        let label = format!("{acceptor}/{dispatcher}");
        // One keep-alive connection through every kind of route, twice.
        let mut stream = std::net::TcpStream::connect(server.local_addr()).expect("connect");
        for _ in 0..2 {
            let health = get(&mut stream, "/healthz");
            assert_eq!(
                (health.status, health.text()),
                (200, "ok 2\n".into()),
                "{label}"
            );
            let under = get(&mut stream, "/api/v1/items?x=1");
            assert_eq!(
                (under.status, under.text()),
                (200, "/api/v1/items".into()),
                "{label}"
            );
            // Exact means exact: the static files answer what is not mounted.
            assert_eq!(get(&mut stream, "/healthz/more").status, 404, "{label}");
            let file = get(&mut stream, "/");
            assert_eq!((file.status, file.body), (200, index.clone()), "{label}");
            let echo = get(&mut stream, "/echo");
            assert_eq!(echo.status, 200, "{label}");
            assert!(echo.text().starts_with("GET /echo HTTP/1.1\r\n"), "{label}");
            let status = get(&mut stream, "/status");
            assert_eq!(status.status, 200, "{label}");
            assert!(status.text().contains("\"handler\":\"http\""), "{label}");
        }
        // A body the service does not read is drained like on any route
        // that ignores one: the next request on the connection is answered.
        let body = "GET /smuggled HTTP/1.1\r\nX: y\r\n\r\n";
        let request = format!(
            "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("send");
        let drained = read_response(&mut stream);
        assert_eq!(
            (drained.status, drained.text()),
            (200, "ok 2\n".into()),
            "{label}"
        );
        let after = get(&mut stream, "/healthz");
        assert_eq!(
            after.status, 200,
            "{label}: the body was not read as a request"
        );
        assert_eq!(healthz.served.load(Ordering::SeqCst), 4, "{label}");
        server.shutdown();
    }
    let _ = std::fs::remove_dir_all(&root);
}
