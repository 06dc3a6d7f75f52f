#![no_main]
//! See `checks::config` (shared with tests/it/fuzz_corpus.rs).

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::config(data));
