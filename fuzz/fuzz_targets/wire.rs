//! Every wire message decoder: whatever decodes round-trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    peerbook::engine::fuzz::wire(data);
});
