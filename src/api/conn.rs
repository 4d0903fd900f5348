//! Bounds on HTTP connections, below the routes: at most
//! `api.max_connections` open at once (one more gets a 503 in the API's
//! error shape and is closed), and a connection on which nothing moves in
//! either direction for `api.idle_timeout_secs`, while none of its requests
//! is being handled, is closed — a client that opens connections and sends
//! nothing (or a byte now and then) cannot hold the node's sockets, and a
//! slow answer (an order waiting for its takes) is not cut. An event stream
//! stays busy by itself: a keep-alive comment well within the timeout.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::ApiCounters;

/// How long a refused connection gets to take its 503 (and how long the
/// request it sent is read and dropped, so the close does not reset the
/// connection before the client read the answer).
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// A TCP listener that admits at most `max` connections at once and closes
/// idle ones.
pub struct BoundedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    max: usize,
    idle: Duration,
    counters: Arc<ApiCounters>,
}

impl BoundedListener {
    pub fn new(
        inner: TcpListener,
        max: usize,
        idle: Duration,
        counters: Arc<ApiCounters>,
    ) -> BoundedListener {
        BoundedListener {
            inner,
            permits: Arc::new(Semaphore::new(max)),
            max,
            idle,
            counters,
        }
    }
}

impl Listener for BoundedListener {
    type Io = BoundedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (BoundedIo, SocketAddr) {
        loop {
            let (io, addr) = Listener::accept(&mut self.inner).await;
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    self.counters.connections.fetch_add(1, Ordering::Relaxed);
                    return (
                        BoundedIo {
                            io,
                            _permit: permit,
                            busy: Arc::default(),
                            idle: self.idle,
                            deadline: Box::pin(tokio::time::sleep(self.idle)),
                            counters: self.counters.clone(),
                        },
                        addr,
                    );
                }
                Err(_) => {
                    ApiCounters::bump(&self.counters.connections_refused);
                    tokio::spawn(refuse(io, self.max));
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Answer a connection over the limit with a 503 and close it.
async fn refuse(mut io: TcpStream, max: usize) {
    let body = super::ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "too_many_connections",
        format!(
            "this node serves at most {max} HTTP connections at once (api.max_connections); \
             retry later"
        ),
    )
    .body_json();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        if io.write_all(answer.as_bytes()).await.is_ok() && io.shutdown().await.is_ok() {
            let mut sink = [0u8; 4096];
            let mut drained = 0usize;
            while drained < 1024 * 1024 {
                match io.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
            }
        }
    })
    .await;
}

/// An admitted connection: holds its place until dropped, and fails with
/// `TimedOut` once nothing moved for the idle timeout.
pub struct BoundedIo {
    io: TcpStream,
    _permit: OwnedSemaphorePermit,
    /// Requests of this connection being handled right now.
    busy: Arc<AtomicUsize>,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    counters: Arc<ApiCounters>,
}

impl Drop for BoundedIo {
    fn drop(&mut self) {
        self.counters.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl BoundedIo {
    fn moved(&mut self) {
        let next = Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    /// Pending on the socket: fail if the idle time is up (polling the
    /// timer also wakes the connection when it is). While a request is
    /// being handled the connection is not idle: the timer starts over,
    /// and the answer's first byte will wake the connection anyway.
    fn idle_check<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if self.busy.load(Ordering::Acquire) > 0 {
            self.moved();
            return Poll::Pending;
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                ApiCounters::bump(&self.counters.connections_timed_out);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "nothing moved on the connection for api.idle_timeout_secs",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for BoundedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.idle_check(cx),
        }
    }
}

impl AsyncWrite for BoundedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, data) {
            Poll::Ready(r) => {
                if r.as_ref().is_ok_and(|n| *n > 0) {
                    this.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.idle_check(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                if r.as_ref().is_ok_and(|n| *n > 0) {
                    this.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.idle_check(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The connection a request came on, as the router sees it: how many of
/// its requests are being handled.
#[derive(Clone, Debug)]
pub struct ConnBusy(Arc<AtomicUsize>);

impl Connected<IncomingStream<'_, BoundedListener>> for ConnBusy {
    fn connect_info(stream: IncomingStream<'_, BoundedListener>) -> Self {
        ConnBusy(stream.io().busy.clone())
    }
}

/// Counts a request as being handled until its handler answers (or is
/// dropped).
struct BusyGuard(Arc<AtomicUsize>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Middleware: read the request's body (up to `api.max_body_bytes`), then
/// mark the connection busy while the handler answers, so the idle timeout
/// cuts a client that stalls in the middle of its body but not a slow
/// answer.
pub async fn mark_busy(
    State(state): State<Arc<super::ApiState>>,
    request: Request,
    next: Next,
) -> Response {
    let conn = request.extensions().get::<ConnectInfo<ConnBusy>>().cloned();
    let (parts, body) = request.into_parts();
    let limit = state.limits.max_body_bytes;
    let mut bytes = Vec::new();
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                return super::ApiError::bad_request(
                    "bad_body",
                    format!("cannot read the body: {e}"),
                )
                .into_response()
            }
        };
        if bytes.len() + chunk.len() > limit {
            // Named and counted by the body limit around this.
            return axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response();
        }
        bytes.extend_from_slice(&chunk);
    }
    let request = Request::from_parts(parts, axum::body::Body::from(bytes));
    let _guard = conn.map(|ConnectInfo(ConnBusy(busy))| {
        busy.fetch_add(1, Ordering::AcqRel);
        BusyGuard(busy)
    });
    next.run(request).await
}
