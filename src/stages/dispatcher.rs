//! Dispatchers: take connections off the worker's pending queue and run the
//! handler on them.
//!
//! - `spawn`: a new green thread per request (the original design).
//! - `pool`: a fixed number of long-lived handler green threads per worker,
//!   each pulling from the queue; no spawn per request.

use std::sync::Arc;

use crate::runtime::{self, Handle};

use super::{Dispatcher, Handler, Line};

pub struct SpawnPerRequest;

pub struct Pool {
    /// Handler green threads per worker.
    pub size: usize,
}

impl Dispatcher for SpawnPerRequest {
    fn name(&self) -> &str {
        "spawn"
    }

    fn start(&self, runtime: &Handle, line: &Arc<Line>, handler: Arc<dyn Handler>) {
        for worker in 0..runtime.workers() {
            let line = line.clone();
            let handler = handler.clone();
            runtime
                .spawn_on(worker, async move {
                    let pending = &line.pending[worker];
                    loop {
                        let conn = pending.pop().await;
                        let line = line.clone();
                        let handler = handler.clone();
                        runtime::spawn_detached(async move { handler.handle(conn, &line).await });
                    }
                })
                .detach();
        }
    }
}

impl Dispatcher for Pool {
    fn name(&self) -> &str {
        "pool"
    }

    fn start(&self, runtime: &Handle, line: &Arc<Line>, handler: Arc<dyn Handler>) {
        let size = self.size.max(1);
        for worker in 0..runtime.workers() {
            let line = line.clone();
            let handler = handler.clone();
            // Handler futures stay on their worker (not `Send`), so the pool
            // is spawned from a green thread already there.
            runtime
                .spawn_local_on(worker, move || async move {
                    for _ in 0..size {
                        let line = line.clone();
                        let handler = handler.clone();
                        runtime::spawn(async move {
                            let pending = &line.pending[worker];
                            loop {
                                let conn = pending.pop().await;
                                handler.handle(conn, &line).await;
                            }
                        })
                        .detach();
                    }
                })
                .detach();
        }
    }
}
