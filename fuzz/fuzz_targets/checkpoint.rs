//! libFuzzer target: [`golden::fuzz::checkpoint`] must return on any input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| golden::fuzz::checkpoint(data));
