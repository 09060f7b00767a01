//! A panic while answering one request becomes a 500 for that request alone: the
//! connection and its worker thread carry on.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project_lite::pin_project! {
    /// Resolves to `Err(payload)` if polling `inner` panics; polls it inside `span`, if
    /// any (one wrapper, so the future is stored once).
    pub(super) struct CatchUnwind<F> {
        #[pin]
        inner: F,
        span: Option<tracing::Span>,
    }
}

impl<F> CatchUnwind<F> {
    #[cfg(test)]
    pub(super) fn new(inner: F) -> Self {
        Self { inner, span: None }
    }

    /// Polls inside `span` (unless it is disabled).
    pub(super) fn in_span(inner: F, span: &tracing::Span) -> Self {
        Self {
            inner,
            span: (!span.is_disabled()).then(|| span.clone()),
        }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let _entered = this.span.as_ref().map(tracing::Span::enter);
        // The future is never polled again after a panic, so no broken invariant of it
        // can be observed.
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// Runs `f` inside `span`; a panic becomes `Err(payload)`.
pub(super) fn sync<T>(span: &tracing::Span, f: impl FnOnce() -> T) -> std::thread::Result<T> {
    span.in_scope(|| catch_unwind(AssertUnwindSafe(f)))
}

/// The panic's message, if it has one.
pub(super) fn message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_future_becomes_an_error_and_others_pass_through() {
        let ok = CatchUnwind::new(async { 7 }).await;
        assert_eq!(ok.unwrap(), 7);
        let panicked = CatchUnwind::new(async {
            tokio::task::yield_now().await;
            if std::hint::black_box(true) {
                panic!("boom {}", 42);
            }
            0
        })
        .await;
        assert_eq!(message(&*panicked.unwrap_err()), "boom 42");
    }
}
