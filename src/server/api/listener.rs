//! A TCP listener that caps concurrent connections (as mini-redis's
//! `Semaphore`). A connection over the cap is not left waiting in the kernel
//! backlog, where `/health` would hang with it: it gets one short answer and
//! is closed, `200` to `GET /health` (a load balancer keeps seeing a live
//! node) and `503 overloaded` to anything else (nothing was applied: a client
//! may send even a write elsewhere). At most [`OVERFLOW`] such answers are
//! written at once; beyond them a connection is closed unanswered.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections over the cap answered at once.
pub const OVERFLOW: usize = 4096;
/// How long an over-cap connection has to send its request line.
const OVERFLOW_READ: Duration = Duration::from_secs(1);

/// A listener handing out at most `max` live connections at a time.
pub struct CappedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    overflow: Arc<Semaphore>,
    /// Under TLS, over-cap connections are answered over TLS.
    tls: Option<Arc<crate::server::tls::Tls>>,
}

impl CappedListener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener, max: usize) -> Self {
        CappedListener {
            inner,
            permits: Arc::new(Semaphore::new(max)),
            overflow: Arc::new(Semaphore::new(OVERFLOW)),
            tls: None,
        }
    }

    /// The port speaks TLS: over-cap connections are answered over it.
    pub fn with_tls(mut self, tls: Option<Arc<crate::server::tls::Tls>>) -> Self {
        self.tls = tls;
        self
    }

    /// The next connection under the cap; those over it are answered and
    /// closed meanwhile.
    pub async fn accept(&mut self) -> (CappedStream, SocketAddr) {
        let mut backoff = Duration::from_millis(5);
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    match Arc::clone(&self.permits).try_acquire_owned() {
                        Ok(permit) => {
                            return (
                                CappedStream {
                                    stream,
                                    _permit: permit,
                                },
                                addr,
                            );
                        }
                        Err(_) => {
                            if let Ok(slot) = Arc::clone(&self.overflow).try_acquire_owned() {
                                let tls = self.tls.clone();
                                tokio::spawn(async move {
                                    match tls {
                                        None => over_capacity(stream).await,
                                        Some(tls) => {
                                            let accepted = tokio::time::timeout(
                                                OVERFLOW_READ,
                                                tls.for_clients().accept(stream),
                                            )
                                            .await;
                                            if let Ok(Ok(stream)) = accepted {
                                                over_capacity(stream).await;
                                            }
                                        }
                                    }
                                    drop(slot);
                                });
                            }
                        }
                    }
                }
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed; backing off");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Answers one connection over the cap and closes it.
async fn over_capacity<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let mut head = [0u8; 64];
    let n = tokio::time::timeout(OVERFLOW_READ, stream.read(&mut head))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    let line = &head[..n];
    let live = [b"GET /health ".as_slice(), b"GET /health/live "]
        .iter()
        .any(|p| line.starts_with(p));
    let (status, body) = if live {
        ("200 OK", r#"{"status":"ok"}"#.to_string())
    } else {
        (
            "503 Service Unavailable",
            r#"{"error":"overloaded","message":"the node is at its connection cap (max_connections); nothing was applied, retry"}"#
                .to_string(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}: true\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len(),
        dynakv_client::NOT_APPLIED_HEADER
    );
    let _ = tokio::time::timeout(OVERFLOW_READ, stream.write_all(response.as_bytes())).await;
    let _ = stream.shutdown().await;
    // Read (a little of) what the client still sends, so closing does not
    // reset the connection before it reads the answer.
    let mut rest = [0u8; 4096];
    let drain = async {
        let mut left = 64 << 10;
        while left > 0 {
            match stream.read(&mut rest).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left -= n.min(left),
            }
        }
    };
    let _ = tokio::time::timeout(OVERFLOW_READ, drain).await;
}

/// A connection holding one of the listener's permits until it closes.
pub struct CappedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for CappedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
