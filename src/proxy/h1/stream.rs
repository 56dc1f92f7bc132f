//! An upstream connection's byte stream: plain TCP, or TLS over it (a service whose
//! protocol is https). The exchange code reads and writes either alike; the plain one
//! keeps its shortcuts (a write tried without a timer, an idle check without a read).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub enum UpstreamStream {
    Plain(TcpStream),
    /// Boxed: rustls's state is kilobytes, and most connections are plain.
    Tls(Box<TlsStream<TcpStream>>),
}

impl From<TcpStream> for UpstreamStream {
    fn from(tcp: TcpStream) -> Self {
        UpstreamStream::Plain(tcp)
    }
}

impl From<TlsStream<TcpStream>> for UpstreamStream {
    fn from(tls: TlsStream<TcpStream>) -> Self {
        UpstreamStream::Tls(Box::new(tls))
    }
}

impl UpstreamStream {
    fn tcp(&self) -> &TcpStream {
        match self {
            UpstreamStream::Plain(tcp) => tcp,
            UpstreamStream::Tls(tls) => tls.get_ref().0,
        }
    }

    /// Whether the peer has sent nothing and not closed: a read of the socket that finds
    /// nothing. Under TLS too: anything readable on an idle connection (a close_notify,
    /// a stray record) means it is not reused, so bytes taken from under TLS are no loss.
    /// And rustls must hold nothing already read (plaintext, or a close_notify): those
    /// would be taken for the next request's response.
    pub fn is_quiet(&self) -> bool {
        let mut probe = [0u8; 1];
        let socket_quiet = matches!(self.tcp().try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        match self {
            UpstreamStream::Plain(_) => socket_quiet,
            UpstreamStream::Tls(tls) => socket_quiet && tls.get_ref().1.wants_read(),
        }
    }

    /// A write without waiting, as much as the socket takes now. TLS has to encrypt
    /// first, so it says "would block" and the caller writes the usual way.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            UpstreamStream::Plain(tcp) => tcp.try_write(buf),
            UpstreamStream::Tls(_) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            UpstreamStream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            UpstreamStream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            UpstreamStream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            UpstreamStream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
