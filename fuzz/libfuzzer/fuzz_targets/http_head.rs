#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| odseed_fuzz::run("http_head", data));
