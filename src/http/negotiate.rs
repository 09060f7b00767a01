//! HTTP/1.1 and h2c on one port, decided by peeking at a connection's first bytes (they
//! stay in the socket): HTTP/1.1 is served by hyper's HTTP/1 connection on the bare socket,
//! h2c with prior knowledge by hyper's HTTP/2 connection. hyper-util's `auto` connection,
//! which reads the first bytes itself and puts every later read and write through a
//! rewinding wrapper, serves only a connection whose first bytes do not decide it (an
//! HTTP/2 preface arriving in pieces).

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::{HttpService, Service};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::ReadBuf;
use tokio::net::TcpStream;

use super::conn::Graceful;

/// The client preface of HTTP/2 (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

type BoxError = Box<dyn StdError + Send + Sync>;

/// The request handler a connection calls.
pub(super) trait Handler:
    Service<
        Request<Incoming>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future: Send + 'static,
    > + HttpService<Incoming, ResBody = Full<Bytes>, Error = Infallible, Future: Send + 'static>
{
}

impl<S> Handler for S where
    S: Service<
            Request<Incoming>,
            Response = Response<Full<Bytes>>,
            Error = Infallible,
            Future: Send + 'static,
        > + HttpService<Incoming, ResBody = Full<Bytes>, Error = Infallible, Future: Send + 'static>
{
}

/// The configured connection builders.
#[derive(Clone)]
pub(super) struct Builders {
    pub http1: http1::Builder,
    pub http2: http2::Builder<TokioExecutor>,
    pub auto: auto::Builder<TokioExecutor>,
}

/// What the first bytes say.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Http1,
    Http2,
    Undecided,
}

fn decide(first: &[u8]) -> Seen {
    if !PREFACE.starts_with(first) {
        Seen::Http1
    } else if first.len() == PREFACE.len() {
        Seen::Http2
    } else {
        Seen::Undecided
    }
}

pin_project_lite::pin_project! {
    /// A connection: peeking until its protocol is known, then served.
    #[project = ServingProj]
    pub(super) enum Serving<S>
    where
        S: HttpService<Incoming>,
    {
        Peeking {
            stream: Option<TcpStream>,
            service: Option<S>,
            builders: Arc<Builders>,
            closing: bool,
        },
        H1 { #[pin] conn: http1::Connection<TokioIo<TcpStream>, S> },
        H2 { #[pin] conn: http2::Connection<TokioIo<TcpStream>, S, TokioExecutor> },
        Auto { #[pin] conn: auto::Connection<'static, TokioIo<TcpStream>, S, TokioExecutor> },
    }
}

impl<S: HttpService<Incoming>> Serving<S> {
    /// Serves `stream` with `service` once its first bytes arrive.
    pub(super) fn new(stream: TcpStream, service: S, builders: Arc<Builders>) -> Self {
        Serving::Peeking {
            stream: Some(stream),
            service: Some(service),
            builders,
            closing: false,
        }
    }
}

impl<S: Handler> Future for Serving<S> {
    type Output = Result<(), BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project() {
                ServingProj::H1 { conn } => return Future::poll(conn, cx).map_err(Into::into),
                ServingProj::H2 { conn } => return Future::poll(conn, cx).map_err(Into::into),
                ServingProj::Auto { conn } => return Future::poll(conn, cx),
                ServingProj::Peeking {
                    stream,
                    service,
                    builders,
                    closing,
                } => {
                    if *closing {
                        // Shut down before its first byte: nothing to finish.
                        return Poll::Ready(Ok(()));
                    }
                    let mut first = [0u8; PREFACE.len()];
                    let mut buf = ReadBuf::new(&mut first);
                    let socket = stream.as_ref().expect("peeking holds the stream");
                    match socket.poll_peek(cx, &mut buf) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                        // Closed before sending anything.
                        Poll::Ready(Ok(0)) => return Poll::Ready(Ok(())),
                        Poll::Ready(Ok(_)) => {}
                    }
                    let io = TokioIo::new(stream.take().expect("peeking holds the stream"));
                    let service = service.take().expect("peeking holds the service");
                    match decide(buf.filled()) {
                        Seen::Http1 => Serving::H1 {
                            conn: builders.http1.serve_connection(io, service),
                        },
                        Seen::Http2 => Serving::H2 {
                            conn: builders.http2.serve_connection(io, service),
                        },
                        Seen::Undecided => Serving::Auto {
                            conn: builders.auto.serve_connection(io, service).into_owned(),
                        },
                    }
                }
            };
            self.set(next);
        }
    }
}

impl<S: Handler> Graceful for Serving<S> {
    fn graceful_shutdown(self: Pin<&mut Self>) {
        match self.project() {
            ServingProj::Peeking { closing, .. } => *closing = true,
            ServingProj::H1 { conn } => conn.graceful_shutdown(),
            ServingProj::H2 { conn } => conn.graceful_shutdown(),
            ServingProj::Auto { conn } => conn.graceful_shutdown(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bytes_decide_only_when_they_can() {
        assert_eq!(decide(b"POST /score HTTP/1.1\r\n"), Seen::Http1);
        assert_eq!(decide(b"GET / HTTP/1.0\r\n\r\n"), Seen::Http1);
        assert_eq!(decide(b"PO"), Seen::Http1);
        assert_eq!(decide(b"x"), Seen::Http1);
        assert_eq!(decide(PREFACE), Seen::Http2);
        assert_eq!(decide(b"P"), Seen::Undecided);
        assert_eq!(decide(b"PRI * HTTP/2.0\r\n"), Seen::Undecided);
    }
}
