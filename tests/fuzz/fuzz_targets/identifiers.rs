//! libFuzzer entry point; the harness is [`creditgate_fuzz::check_identifiers`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| creditgate_fuzz::check_identifiers(data));
