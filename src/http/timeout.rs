//! A body that fails when it goes idle: Kong's read and write timeouts bound the time
//! between two successive chunks, not the whole transfer, so a long stream that keeps
//! moving is fine and a stalled one is cut.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::BoxError;

#[derive(Debug, thiserror::Error)]
#[error("body idle for more than {0:?}")]
pub struct Idle(pub Duration);

pin_project! {
    /// The timer is armed only once the body has to wait; progress just moves
    /// `last_progress`. Resetting a registered timer on every chunk wakes the runtime's
    /// driver (an eventfd write per proxied request, seen in a profile), so the timer's
    /// deadline moves only when the body is about to wait again.
    pub struct IdleTimeout<B> {
        #[pin]
        inner: B,
        timer: Option<Pin<Box<Sleep>>>,
        last_progress: Instant,
        limit: Duration,
    }
}

impl<B> IdleTimeout<B> {
    pub fn new(inner: B, limit: Duration) -> Self {
        Self::since(inner, limit, Instant::now())
    }

    /// Counts idleness from `start` (a moment the caller has just read the clock for).
    pub fn since(inner: B, limit: Duration, start: Instant) -> Self {
        IdleTimeout { inner, timer: None, last_progress: start, limit }
    }
}

impl<B> Body for IdleTimeout<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.inner.as_mut().poll_frame(cx) {
            // Progress: the idle clock starts again, unless nothing is left to wait for.
            if !this.inner.is_end_stream() {
                *this.last_progress = Instant::now();
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = *this.last_progress + *this.limit;
        let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(Idle(*this.limit))))),
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

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, StreamBody};

    use super::*;

    #[tokio::test]
    async fn a_stalled_body_fails_and_a_moving_one_does_not() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, hyper::Error>>(4);
        let stream = tokio_stream_from(rx);
        let mut body = Box::pin(IdleTimeout::new(StreamBody::new(stream), Duration::from_millis(100)));
        tx.send(Ok(Frame::data(Bytes::from_static(b"a")))).await.unwrap();
        assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap(), "a");
        // Nothing more arrives: the idle limit cuts the stream.
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.downcast_ref::<Idle>().is_some(), "{err}");
        drop(tx);
    }

    fn tokio_stream_from<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_core::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
