//! libFuzzer entry point; the harness is [`creditgate_fuzz::check_http_bodies`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| creditgate_fuzz::check_http_bodies(data));
