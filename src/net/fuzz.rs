//! Fuzzing entry point of the request-response framing, shared by the
//! `cargo fuzz` target `codec` (fuzz/) and the test that replays its corpus
//! on stable Rust (tests/fuzz_corpus.rs).
//!
//! [`codec`] reads bytes as a stream of request frames and as one of
//! response frames, under limits taken from the first two bytes, and checks
//! every outcome against a plain model of the format: a 4-byte big-endian
//! length, then that many bytes. A frame over the limit must be refused as
//! [`FrameTooLarge`] (before reading it), a short one as end of file, and
//! whatever is read must be exactly the bytes framed. Writing refuses what is
//! over the limit without writing anything, and what it writes reads back.

use std::io;

use futures::executor::block_on;
use futures::io::Cursor;
use libp2p::request_response::Codec;
use libp2p::StreamProtocol;

use super::codec::{BytesCodec, FrameTooLarge};

/// What the model expects of the next frame at `rest`.
enum Expect<'a> {
    Frame(&'a [u8]),
    TooLarge,
    Eof,
}

fn expect(rest: &[u8], max: usize) -> Expect<'_> {
    let Some((len, body)) = rest.split_first_chunk::<4>() else {
        return Expect::Eof;
    };
    let len = u32::from_be_bytes(*len) as usize;
    if len > max {
        Expect::TooLarge
    } else if body.len() < len {
        Expect::Eof
    } else {
        Expect::Frame(&body[..len])
    }
}

/// Run the framing on `data` (see the module docs); panics on a mismatch.
pub fn codec(data: &[u8]) {
    let Some((limits, stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max_request = usize::from(limits[0]) * 4;
    let max_response = usize::from(limits[1]) * 64;
    let mut codec = BytesCodec::new(max_request, max_response);
    let proto = StreamProtocol::new("/peerbook/fuzz/1");
    block_on(async {
        for response in [false, true] {
            let max = if response { max_response } else { max_request };
            let mut wire = Cursor::new(stream);
            loop {
                let at = wire.position() as usize;
                let got = if response {
                    codec.read_response(&proto, &mut wire).await
                } else {
                    codec.read_request(&proto, &mut wire).await
                };
                match (expect(&stream[at..], max), got) {
                    (Expect::Frame(want), Ok(frame)) => {
                        assert_eq!(frame, want, "frame at {at} read wrong");
                        assert!(frame.len() <= max);
                    }
                    (Expect::TooLarge, Err(e)) => {
                        assert!(FrameTooLarge::is_in(&e), "frame at {at}: {e}");
                        break;
                    }
                    (Expect::Eof, Err(e)) => {
                        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "frame at {at}: {e}");
                        break;
                    }
                    (_, got) => panic!("frame at {at} under limit {max}: {got:?}"),
                }
            }
        }
        // Writing: over the limit is refused with nothing written; under
        // it, the frame reads back.
        let payload = stream.to_vec();
        let mut out = Cursor::new(Vec::new());
        let wrote = codec
            .write_response(&proto, &mut out, payload.clone())
            .await;
        let out = out.into_inner();
        if payload.len() > max_response {
            let e = wrote.expect_err("an oversized response was written");
            assert!(FrameTooLarge::is_in(&e), "{e}");
            assert!(out.is_empty(), "an oversized response left bytes behind");
        } else {
            wrote.expect("a response within the limit");
            let back = codec
                .read_response(&proto, &mut Cursor::new(&out))
                .await
                .expect("a written response reads back");
            assert_eq!(back, payload);
        }
    });
}
