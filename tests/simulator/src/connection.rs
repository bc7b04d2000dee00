//! Connections the simulator can reset on purpose (`reset_rate`): a real TCP reset, not a
//! slow answer.
//!
//! axum 0.8 gives a handler no way to drop its connection: hyper owns the socket, and a
//! handler that panics or never returns is not a reset. So the listener wraps every
//! accepted `TcpStream` in a [`ResettableStream`] that shares a [`ConnectionControl`]
//! with the per-connection service. That service runs each request inside a tokio
//! task-local holding the control, so a handler calls [`reset_current`] to mark its
//! connection. From then on every read, write or flush of the stream fails with
//! `ConnectionReset` (so not one byte of the answer is written), it sets `SO_LINGER` to
//! zero, and hyper drops the connection: the kernel closes the socket with an RST, and
//! the client sees "connection reset by peer" after its request was sent.
//!
//! Cost when no reset is asked for: one `Arc` per connection; per request an `Arc`
//! clone and the task-local scope; per read or write one relaxed atomic load.
//!
//! Owns the listener, the stream wrapper and the two services; calls nothing else in the
//! crate.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::future::RouteFuture;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::futures::TaskLocalFuture;
use tower::Service;

tokio::task_local! {
    /// The connection the request being handled came on.
    static CONNECTION: Arc<ConnectionControl>;
}

/// Marks the connection of the request being handled for a reset. False when the
/// request did not come through [`ResettableListener`] (nothing to reset).
pub(crate) fn reset_current() -> bool {
    CONNECTION
        .try_with(|control| control.reset.store(true, Ordering::Relaxed))
        .is_ok()
}

/// What a handler and its connection's stream share.
#[derive(Debug, Default)]
pub(crate) struct ConnectionControl {
    reset: AtomicBool,
}

/// A TCP listener whose connections can be reset by their handlers; sets
/// `TCP_NODELAY` on each.
#[derive(Debug)]
pub(crate) struct ResettableListener {
    listener: TcpListener,
}

impl ResettableListener {
    pub(crate) fn new(listener: TcpListener) -> Self {
        Self { listener }
    }
}

impl Listener for ResettableListener {
    type Io = ResettableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // axum's own accept retries and backs off on errors.
        let (stream, address) = Listener::accept(&mut self.listener).await;
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let stream = ResettableStream {
            stream,
            control: Arc::default(),
        };
        (stream, address)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// An accepted connection that fails every operation once it is marked for a reset.
#[derive(Debug)]
pub(crate) struct ResettableStream {
    stream: TcpStream,
    control: Arc<ConnectionControl>,
}

impl ResettableStream {
    /// `Some(error)` once the connection is marked; also makes the coming close an RST.
    fn reset_error(&self) -> Option<io::Error> {
        if !self.control.reset.load(Ordering::Relaxed) {
            return None;
        }
        if let Err(error) = self.stream.set_zero_linger() {
            tracing::debug!(%error, "could not set SO_LINGER to zero");
        }
        Some(io::Error::from(io::ErrorKind::ConnectionReset))
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(error) = this.reset_error() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.stream).poll_read(context, buffer)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(error) = this.reset_error() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.stream).poll_write(context, buffer)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(error) = this.reset_error() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.stream).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(error) = this.reset_error() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.stream).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(error) = this.reset_error() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.stream).poll_shutdown(context)
    }
}

/// Makes one [`ConnectionService`] per accepted connection.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionServices {
    router: Router,
}

impl ConnectionServices {
    pub(crate) fn new(router: Router) -> Self {
        Self { router }
    }
}

impl Service<IncomingStream<'_, ResettableListener>> for ConnectionServices {
    type Response = ConnectionService;
    type Error = Infallible;
    type Future = Ready<Result<ConnectionService, Infallible>>;

    fn poll_ready(&mut self, _context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, incoming: IncomingStream<'_, ResettableListener>) -> Self::Future {
        ready(Ok(ConnectionService {
            router: self.router.clone(),
            control: Arc::clone(&incoming.io().control),
        }))
    }
}

/// The router, run for each request of one connection with that connection's control
/// in [`CONNECTION`].
#[derive(Clone, Debug)]
pub(crate) struct ConnectionService {
    router: Router,
    control: Arc<ConnectionControl>,
}

impl Service<Request> for ConnectionService {
    type Response = Response;
    type Error = Infallible;
    type Future = TaskLocalFuture<Arc<ConnectionControl>, RouteFuture<Infallible>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request>::poll_ready(&mut self.router, context)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        CONNECTION.scope(Arc::clone(&self.control), self.router.call(request))
    }
}
