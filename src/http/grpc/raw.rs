//! tonic plumbing: a codec that hands message bytes through (the protobuf is decoded in
//! the scoring use case, off the runtime for large bodies, like every other protocol's
//! body), and a request body that fails once the body read timeout passes.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Message bytes in, message bytes out.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

pin_project_lite::pin_project! {
    /// A request body whose frames must all arrive before `deadline`.
    pub(super) struct Deadline<B> {
        #[pin]
        inner: B,
        #[pin]
        deadline: Sleep,
        timeout: std::time::Duration,
    }
}

impl<B> Deadline<B> {
    /// `inner`, cut `timeout` from now.
    pub(super) fn new(inner: B, timeout: std::time::Duration) -> Self {
        Self {
            inner,
            deadline: tokio::time::sleep(timeout),
            timeout,
        }
    }
}

impl<B> Body for Deadline<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match this.deadline.poll(cx) {
            // A `Status`: tonic answers it as it is.
            Poll::Ready(()) => {
                Poll::Ready(Some(Err(Box::new(Status::deadline_exceeded(format!(
                    "the request message did not arrive within {} (--body-read-timeout)",
                    humantime::format_duration(*this.timeout)
                ))))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
