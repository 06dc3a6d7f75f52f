#![no_main]
//! See `checks::per_client_step` (shared with tests/it/fuzz_corpus.rs).

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::per_client_step(data));
