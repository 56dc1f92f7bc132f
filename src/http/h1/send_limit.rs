//! Writes to a client that fail once the client has read nothing for a while (nginx's
//! `send_timeout`): the limit is on the time between two writes that make progress, not
//! on the whole response, so a slow download that keeps moving is fine and a client that
//! stops reading cannot hold the connection, and the upstream exchange behind it, for good.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{sleep, Sleep};

/// `inner`, whose writes fail with `TimedOut` after `limit` without progress.
pub struct SendLimit<S> {
    inner: S,
    limit: Duration,
    /// Set when a write first has to wait, dropped at the next progress: a client that
    /// keeps up never sets a timer.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> SendLimit<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        SendLimit { inner, limit, stalled: None }
    }

    /// After a write that had to wait: an error once the wait has gone on too long.
    fn poll_stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.limit;
        let timer = self.stalled.get_or_insert_with(|| Box::pin(sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, format!("the client read nothing for {limit:?}")))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(&mut self, result: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match result {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.poll_stalled(cx),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendLimit<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(result, cx)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(result, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progress(result, cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendLimit<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_stops_fails_the_write_and_one_that_keeps_up_does_not() {
        let (client, server) = tokio::io::duplex(64);
        let mut server = SendLimit::new(server, Duration::from_secs(60));
        let mut client = client;
        // A slow reader: 32 bytes every 59 s, under the limit each time.
        let data = vec![7u8; 256];
        let reading = async {
            let mut got = Vec::new();
            let mut chunk = [0u8; 32];
            while got.len() < 256 {
                tokio::time::sleep(Duration::from_secs(59)).await;
                let n = client.read(&mut chunk).await.unwrap();
                got.extend_from_slice(&chunk[..n]);
            }
            got
        };
        let (written, got) = tokio::join!(server.write_all(&data), reading);
        written.unwrap();
        assert_eq!(got, data);

        // Now nobody reads: the write fails once the limit has passed.
        let started = tokio::time::Instant::now();
        let err = server.write_all(&[1u8; 256]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        drop(client);
    }
}
