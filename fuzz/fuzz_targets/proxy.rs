#![no_main]
//! See `checks::proxy` (shared with tests/it/fuzz_corpus.rs).

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::proxy(data));
