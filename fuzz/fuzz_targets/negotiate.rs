#![no_main]
//! See `checks::negotiate` (shared with tests/it/fuzz_corpus.rs).

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::negotiate(data));
