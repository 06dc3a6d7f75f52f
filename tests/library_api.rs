//! Stages swapped from the library API: a user-written dispatcher and
//! handler drop into the line and serve real sockets.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use conveyor::runtime::Handle;
use conveyor::stages::{Conn, Dispatcher, Handler, Line, LocalFuture};
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

    fn handle<'a>(&'a self, conn: Conn, _line: &'a Line) -> LocalFuture<'a> {
        LocalFuture::new(async move {
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
