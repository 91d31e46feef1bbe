//! libFuzzer target: [`golden::fuzz::digits_csv`] must return on any input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| golden::fuzz::digits_csv(data));
