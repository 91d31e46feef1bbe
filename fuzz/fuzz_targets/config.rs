//! libFuzzer target: [`golden::fuzz::config`] must return on any input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| golden::fuzz::config(data));
