//! The engine fed arbitrary inputs from hostile peers (see
//! `peerbook::engine::fuzz`): it must not panic and must never fill an own
//! order past its quantity.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    peerbook::engine::fuzz::engine(data);
});
