//! libFuzzer entry point; the harness is [`creditgate_fuzz::check_consent_artefact`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| creditgate_fuzz::check_consent_artefact(data));
