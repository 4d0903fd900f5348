//! The request-response framing (length prefix, size limits) against a
//! model of the format: see `peerbook::net::fuzz`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    peerbook::net::fuzz::codec(data);
});
