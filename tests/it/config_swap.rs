//! The configuration is one value that can be replaced while the server
//! runs: a kept-alive connection opened before the swap gets the new
//! settings on its next request, with no error.

use crate::harness::{closed_within, get, start};
use std::time::Duration;

#[test]
fn a_kept_alive_connection_sees_a_replaced_config_on_its_next_request() {
    for (acceptor, dispatcher) in [("readiness", "spawn"), ("reuseport", "pool")] {
        let server = start(acceptor, dispatcher, |_| {});
        let mut stream = server.connect();
        let before = get(&mut stream, "/");
        assert_eq!(before.status, 200, "{}", server.label);
        assert_eq!(before.header("Connection"), None, "{}", server.label);

        let mut config = server.server().line().config.load().as_ref().clone();
        config.limits.max_requests_per_connection = 2;
        assert_eq!(
            server.server().replace_config(config),
            2,
            "{}",
            server.label
        );

        // The second request on this connection is its last under the new
        // limit: answered in full, then closed.
        let after = get(&mut stream, "/");
        assert_eq!(after.status, 200, "{}", server.label);
        assert_eq!(
            after.header("Connection"),
            Some("close"),
            "{}",
            server.label
        );
        assert!(
            closed_within(&mut stream, Duration::from_secs(2)),
            "{}",
            server.label
        );
        // A new connection is served under it too.
        let mut fresh = server.connect();
        assert_eq!(
            get(&mut fresh, "/").header("Connection"),
            None,
            "{}",
            server.label
        );
        assert_eq!(
            get(&mut fresh, "/").header("Connection"),
            Some("close"),
            "{}",
            server.label
        );
    }
}
