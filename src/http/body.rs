//! Reading a request: its body (bounded in size and time) and the content type checks.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header;
use http::{HeaderMap, HeaderValue};

use super::ApiError;

/// A request body the handler reads: hyper's `Incoming` from a connection, or any
/// in-process body (benchmarks, embedding).
pub trait RequestBody:
    hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
    + Send
    + Unpin
{
}

impl<B> RequestBody for B where
    B: hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + Unpin
{
}

/// Accepts one of `types` (any parameters) or no content type, and an uncompressed body.
pub(super) fn check_content_type(
    headers: &HeaderMap,
    types: &'static [&'static str],
) -> Result<(), ApiError> {
    // One walk over the few request headers, comparing standard names (an enum compare),
    // instead of two hashed lookups.
    let mut content_type = None;
    for (name, value) in headers {
        if name == header::CONTENT_TYPE {
            content_type.get_or_insert(value);
        } else if name == header::CONTENT_ENCODING
            && !value.as_bytes().eq_ignore_ascii_case(b"identity")
        {
            return Err(ApiError::UnsupportedContentEncoding(lossy(value)));
        }
    }
    let Some(ct) = content_type else {
        return Ok(());
    };
    // The common case, exactly one of the types, without parsing parameters.
    if types
        .iter()
        .any(|t| ct.as_bytes().eq_ignore_ascii_case(t.as_bytes()))
    {
        return Ok(());
    }
    let essence = ct
        .to_str()
        .ok()
        .and_then(|s| s.split(';').next())
        .map(str::trim);
    match essence {
        Some(e) if types.iter().any(|t| e.eq_ignore_ascii_case(t)) => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType {
            got: lossy(ct),
            want: types,
        }),
    }
}

fn lossy(v: &HeaderValue) -> String {
    String::from_utf8_lossy(&v.as_bytes()[..v.len().min(100)]).into_owned()
}

/// Reads a whole request body of at most `limit` bytes. The timeout is armed only if the
/// body is not all there when first polled (usually it came with the head), and runs
/// from then.
pub(super) fn read_body<B: RequestBody>(
    body: &mut B,
    limit: usize,
    timeout: Duration,
) -> ReadBody<'_, B> {
    ReadBody {
        body,
        limit,
        timeout,
        first: Bytes::new(),
        joined: None,
        timer: None,
        started: false,
    }
}

/// The future of [`read_body`]: a plain struct, as small as its state, since it is stored
/// in every request's handler future.
pub(super) struct ReadBody<'b, B> {
    body: &'b mut B,
    limit: usize,
    timeout: Duration,
    /// The body while it is one chunk (kept without a copy).
    first: Bytes,
    /// The body once a second chunk came.
    joined: Option<BytesMut>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    started: bool,
}

impl<B: RequestBody> Future for ReadBody<'_, B> {
    type Output = Result<Bytes, ApiError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let limit = this.limit;
        if !this.started {
            this.started = true;
            // hyper knows the declared Content-Length: refuse before reading anything.
            if hyper::body::Body::size_hint(&*this.body).lower() > limit as u64 {
                return Poll::Ready(Err(ApiError::BodyTooLarge { limit }));
            }
        }
        loop {
            match Pin::new(&mut *this.body).poll_frame(cx) {
                Poll::Ready(None) => break,
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers are not used.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let len = this.joined.as_ref().map_or(this.first.len(), BytesMut::len);
                    if data.len() > limit - len {
                        return Poll::Ready(Err(ApiError::BodyTooLarge { limit }));
                    }
                    match &mut this.joined {
                        Some(j) => j.extend_from_slice(&data),
                        None if this.first.is_empty() => this.first = data,
                        None => {
                            let mut j = BytesMut::with_capacity(len + data.len());
                            j.extend_from_slice(&this.first);
                            j.extend_from_slice(&data);
                            this.joined = Some(j);
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Err(ApiError::BodyRead(e.into().to_string())));
                }
                Poll::Pending => {
                    let timeout = this.timeout;
                    let timer = this
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(ApiError::BodyTimeout(timeout)));
                    }
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Ok(match this.joined.take() {
            Some(j) => j.freeze(),
            None => std::mem::take(&mut this.first),
        }))
    }
}
