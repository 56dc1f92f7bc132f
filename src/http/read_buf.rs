//! Reading a socket into a BytesMut's spare room, through `AsyncRead::poll_read`: a read
//! that leaves room in the buffer has drained the socket, and only `poll_read` then
//! forgets the socket's readiness. `try_read_buf` keeps it, so the next wait on that
//! socket (a watch for a client leaving, the read of the next message, a pooled
//! connection's reuse check) begins with a system call that finds nothing.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};

/// Reads what `io` has into `buf`'s spare capacity; `Ok(0)` at the end of the stream
/// (or if `buf` has no spare capacity).
pub fn poll_read_buf<R: AsyncRead + Unpin>(io: &mut R, buf: &mut BytesMut, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
    // SAFETY: `ReadBuf` never de-initializes what it is given (as tokio's own read_buf).
    let mut read = ReadBuf::uninit(unsafe { buf.chunk_mut().as_uninit_slice_mut() });
    ready!(Pin::new(io).poll_read(cx, &mut read))?;
    let n = read.filled().len();
    // SAFETY: `poll_read` initialized the first `n` bytes of the spare capacity.
    unsafe { buf.advance_mut(n) };
    Poll::Ready(Ok(n))
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    #[tokio::test]
    async fn data_arriving_after_a_read_that_drained_the_socket_still_wakes_the_reader() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut writer = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut reader, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::with_capacity(64);
        writer.write_all(b"abc").await.unwrap();
        assert_eq!(poll_fn(|cx| poll_read_buf(&mut reader, &mut buf, cx)).await.unwrap(), 3);
        // The socket's readiness is gone now; what comes next must bring it back.
        let later = tokio::spawn(async move {
            tokio::task::yield_now().await;
            writer.write_all(b"de").await.unwrap();
            writer
        });
        assert_eq!(poll_fn(|cx| poll_read_buf(&mut reader, &mut buf, cx)).await.unwrap(), 2);
        drop(later.await.unwrap());
        assert_eq!(poll_fn(|cx| poll_read_buf(&mut reader, &mut buf, cx)).await.unwrap(), 0, "the end of the stream");
        assert_eq!(&buf[..], b"abcde");
    }
}
