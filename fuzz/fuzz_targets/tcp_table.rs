#![no_main]

#[path = "../src/proto.rs"]
#[allow(dead_code, reason = "this target uses one of the two entry points")]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check_tcp_table(data));
