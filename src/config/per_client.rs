//! The `[limits.per_client]` table: what one client address may ask of the
//! server (`stages::per_client` enforces it).

blank_struct! {
    /// `[limits.per_client]`: a request rate and a connection count per
    /// client address (IPv6 addresses grouped by /64).
    #[derive(Debug, Clone, PartialEq)]
    pub struct PerClientConfig {
        /// `limits.per_client.rate`: requests per second one client may
        /// make, refilling its bucket; more gets 429 (default 0: no limit).
        pub rate: u32,
        /// `limits.per_client.burst`: the bucket's size, the requests a
        /// client may make at once (default 20).
        pub burst: u32,
        /// `limits.per_client.connections`: open connections one peer
        /// address may hold; more are refused at accept (default 0: no limit).
        pub connections: u32,
        /// `limits.per_client.table_size`: clients the table remembers at
        /// once, rounded up to a whole set (default 16 384).
        pub table_size: usize,
    }
}

impl PerClientConfig {
    /// Whether either limit is on.
    pub fn enabled(&self) -> bool {
        self.rate > 0 || self.connections > 0
    }

    /// Settings that cannot work, worded as the fix.
    pub fn refusal(&self) -> Option<String> {
        (self.rate > 0 && self.burst < 1).then(|| {
            format!(
                "limits.per_client.burst = {} with limits.per_client.rate = {} would refuse \
                 every request; set burst to at least 1 (say burst = {}, twice the rate), \
                 or rate = 0 to turn the limit off",
                self.burst,
                self.rate,
                self.rate.saturating_mul(2)
            )
        })
    }
}
