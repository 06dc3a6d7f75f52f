#![no_main]
//! See `checks::ResolveFixture::check` (shared with tests/it/fuzz_corpus.rs).

#[path = "../checks.rs"]
mod checks;

use std::sync::OnceLock;

static FIXTURE: OnceLock<checks::ResolveFixture> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    FIXTURE.get_or_init(checks::ResolveFixture::new).check(data)
});
