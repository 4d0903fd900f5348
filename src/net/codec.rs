//! The request-response codec: a request or response is one frame of bytes,
//! a 4-byte big-endian length followed by that many bytes.
//!
//! The net layer does not know what the bytes mean (the engine encodes and
//! decodes every payload), so all this codec does is frame them and enforce
//! the size limits from the config. A frame that claims more than the limit
//! is refused before anything is read or allocated, and a frame is read as it
//! arrives, so a peer that claims a large frame and sends nothing cannot make
//! the node reserve memory for it.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response;
use libp2p::StreamProtocol;

use super::gate::WriteGate;

/// A frame was larger than the configured limit.
///
/// It travels inside an `io::Error` (that is what the codec trait allows) and
/// is recognised by `requests.rs` to report [`super::RequestFailure::TooLarge`].
#[derive(Debug, thiserror::Error)]
#[error("{what} of {size} bytes exceeds the limit of {max} bytes")]
pub struct FrameTooLarge {
    pub what: &'static str,
    pub size: u64,
    pub max: u64,
}

impl FrameTooLarge {
    /// Whether `err` is (or wraps) a `FrameTooLarge`.
    pub fn is_in(err: &io::Error) -> bool {
        err.get_ref()
            .is_some_and(|inner| inner.downcast_ref::<FrameTooLarge>().is_some())
    }
}

/// Length-prefixed frames of raw bytes with a maximum size per direction.
#[derive(Clone, Debug)]
pub struct BytesCodec {
    max_request: usize,
    max_response: usize,
    /// The take protocol's: requests past their deadline are not written.
    gate: Option<WriteGate>,
}

impl BytesCodec {
    pub fn new(max_request: usize, max_response: usize) -> Self {
        BytesCodec {
            max_request,
            max_response,
            gate: None,
        }
    }

    /// Write a request only if `gate` has not abandoned it (see `gate.rs`).
    pub fn with_gate(mut self, gate: WriteGate) -> Self {
        self.gate = Some(gate);
        self
    }
}

async fn read_frame<T>(io: &mut T, what: &'static str, max: usize) -> io::Result<Vec<u8>>
where
    T: AsyncRead + Unpin + Send,
{
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u64::from(u32::from_be_bytes(len));
    if len > max as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            FrameTooLarge {
                what,
                size: len,
                max: max as u64,
            },
        ));
    }
    // Grows with what actually arrives rather than with what was claimed.
    let mut buf = Vec::new();
    io.take(len).read_to_end(&mut buf).await?;
    if buf.len() as u64 != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{what} ended after {} of {len} bytes", buf.len()),
        ));
    }
    Ok(buf)
}

async fn write_frame<T>(io: &mut T, what: &'static str, max: usize, data: &[u8]) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    let too_large = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            FrameTooLarge {
                what,
                size: data.len() as u64,
                max: max as u64,
            },
        )
    };
    if data.len() > max {
        return Err(too_large());
    }
    let len = u32::try_from(data.len()).map_err(|_| too_large())?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(data).await?;
    io.flush().await
}

impl request_response::Codec for BytesCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, "request", self.max_request).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, "response", self.max_response).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        if self.gate.as_ref().is_some_and(|g| !g.try_write(&req)) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request abandoned: its deadline passed before its stream opened",
            ));
        }
        write_frame(io, "request", self.max_request, &req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, "response", self.max_response, &res).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;
    use request_response::Codec;

    fn proto() -> StreamProtocol {
        StreamProtocol::new("/test/1")
    }

    #[test]
    fn a_frame_round_trips() {
        block_on(async {
            let mut codec = BytesCodec::new(16, 32);
            let mut wire = Cursor::new(Vec::new());
            codec
                .write_request(&proto(), &mut wire, b"hello".to_vec())
                .await
                .unwrap();
            let mut wire = Cursor::new(wire.into_inner());
            let got = codec.read_request(&proto(), &mut wire).await.unwrap();
            assert_eq!(got, b"hello");
        });
    }

    #[test]
    fn an_oversize_claim_is_refused_without_reading_it() {
        block_on(async {
            let mut codec = BytesCodec::new(16, 32);
            // Claims 4 GiB - 1 and sends 3 bytes.
            let mut wire = Cursor::new(vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
            let err = codec.read_request(&proto(), &mut wire).await.unwrap_err();
            assert!(FrameTooLarge::is_in(&err), "{err}");
            assert!(err.to_string().contains("exceeds the limit of 16"), "{err}");
        });
    }

    #[test]
    fn an_oversize_response_is_not_written() {
        block_on(async {
            let mut codec = BytesCodec::new(16, 4);
            let mut wire = Cursor::new(Vec::new());
            let err = codec
                .write_response(&proto(), &mut wire, vec![0; 5])
                .await
                .unwrap_err();
            assert!(FrameTooLarge::is_in(&err));
            assert!(wire.into_inner().is_empty());
        });
    }

    #[test]
    fn a_truncated_frame_is_an_error() {
        block_on(async {
            let mut codec = BytesCodec::new(16, 32);
            let mut wire = Cursor::new(vec![0, 0, 0, 10, 1, 2]);
            let err = codec.read_response(&proto(), &mut wire).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        });
    }
}
