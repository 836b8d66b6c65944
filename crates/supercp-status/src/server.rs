//! The status page's own HTTP/1.1 server: the accept loop, the connection cap and the two
//! timeouts that keep any local user from holding the agent's descriptors.
//!
//! # Guarantees
//! - At most [`Limits::max_connections`] connections are served at once (fewer when the
//!   process's descriptor limit is low: see [`connection_cap`]). A connection past the cap
//!   closes the one that has been idle longest (no request running); when every connection runs
//!   a request, the new one gets a `503` and is closed at once.
//! - A connection must send a whole request head within [`Limits::header_read_timeout`] of the
//!   server starting to wait for it (a fresh connection, or a kept-alive one after an answer),
//!   or it is closed: bytes trickling in do not keep it open.
//! - A connection on which no byte moves for [`Limits::idle_timeout`] while no request of it is
//!   running is closed (a client that stops reading its answer included).
//! - An accept that fails (descriptors exhausted) is retried after a pause, never a busy loop.

use std::collections::HashMap;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;

/// How many connections the page serves at once, and how long it waits for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; see the module's guarantees for what happens past it.
    pub max_connections: usize,
    /// The time a connection has to send a whole request head.
    pub header_read_timeout: Duration,
    /// The time a connection may stay without a byte moving while no request of it runs.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// The answer to a connection past the cap when none can be closed for it.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
Content-Length: 50\r\nConnection: close\r\nRetry-After: 1\r\n\r\n\
busy: the status page serves too many connections\n";

/// How long a failed accept waits before the next one.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// `max_connections`, but at most a quarter of the process's soft descriptor limit
/// (`RLIMIT_NOFILE`), so that the agent keeps descriptors for its own work (Git, the journal,
/// gate checks) whatever the page's clients do. At least 1.
pub fn connection_cap(max_connections: usize) -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(u64::MAX, |(soft, _)| soft);
    let quarter = usize::try_from(soft / 4).unwrap_or(usize::MAX);
    max_connections.min(quarter).max(1)
}

/// Serves `app` on `listener` with `limits`, at most `cap` connections at once. Never returns.
pub(crate) async fn run(listener: TcpListener, app: Router, limits: Limits, cap: usize) {
    let registry = Arc::new(Registry {
        base: Instant::now(),
        open: Mutex::new(HashMap::new()),
        next: AtomicU64::new(0),
        shed: AtomicU64::new(0),
    });
    let mut last_warning: Option<Instant> = None;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    tracing::warn!(error = %e, "status page: cannot accept a connection; retrying");
                    last_warning = Some(Instant::now());
                }
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        let Some((id, conn)) = registry.admit(cap) else {
            // Best effort, without waiting: the connection is closed either way.
            let _ = stream.try_write(BUSY);
            registry.note_shed(cap);
            continue;
        };
        let (app, registry) = (app.clone(), registry.clone());
        tokio::spawn(async move {
            serve_connection(stream, app, &conn, limits).await;
            registry.remove(id);
        });
    }
}

/// The open connections, for the cap and for closing the longest idle one.
struct Registry {
    /// Where the connections' clocks start.
    base: Instant,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    next: AtomicU64,
    /// Connections closed or refused because of the cap, for the log.
    shed: AtomicU64,
}

/// One open connection, as its server task and the registry see it.
struct Conn {
    base: Instant,
    /// Milliseconds after `base` of the last byte read or written.
    last_io_ms: AtomicU64,
    /// Requests of this connection running now (0 or 1 with HTTP/1.1).
    in_flight: AtomicUsize,
    /// Told when the registry closes it to make room.
    close: Notify,
}

impl Registry {
    /// A slot for a new connection: free, or freed by closing the connection idle longest.
    /// `None` when the cap is reached and every connection runs a request.
    fn admit(&self, cap: usize) -> Option<(u64, Arc<Conn>)> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.len() >= cap {
            let idle = open
                .iter()
                .filter(|(_, c)| c.in_flight.load(Ordering::Acquire) == 0)
                .min_by_key(|(_, c)| c.last_io_ms.load(Ordering::Acquire))
                .map(|(id, _)| *id)?;
            if let Some(closed) = open.remove(&idle) {
                closed.close.notify_one();
            }
            self.note_shed(cap);
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            base: self.base,
            last_io_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            close: Notify::new(),
        });
        conn.touch();
        open.insert(id, conn.clone());
        Some((id, conn))
    }

    fn remove(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// Logs the first connection shed because of the cap, then one in 1000.
    fn note_shed(&self, cap: usize) {
        let n = self.shed.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(1000) {
            tracing::warn!(
                cap,
                shed = n + 1,
                "status page: at its connection cap; closing idle connections to make room"
            );
        }
    }
}

impl Conn {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Release);
    }

    /// When the connection becomes idle for `timeout`, if nothing moves before.
    fn idle_deadline(&self, timeout: Duration) -> Instant {
        self.base + Duration::from_millis(self.last_io_ms.load(Ordering::Acquire)) + timeout
    }
}

/// Serves one connection until it ends, times out, or the registry closes it.
async fn serve_connection(stream: TcpStream, app: Router, conn: &Arc<Conn>, limits: Limits) {
    let io = TokioIo::new(Tracked {
        inner: stream,
        conn: conn.clone(),
    });
    let tower = TowerToHyperService::new(app);
    let counted = conn.clone();
    let service = hyper::service::service_fn(move |request| {
        let running = Running::start(&counted);
        let answer = hyper::service::Service::call(&tower, request);
        async move {
            let answer = answer.await;
            drop(running);
            answer
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut serving = pin!(http.serve_connection(io, service));
    loop {
        tokio::select! {
            result = serving.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "status page: connection closed");
                }
                return;
            }
            () = conn.close.notified() => return,
            () = tokio::time::sleep_until(conn.idle_deadline(limits.idle_timeout)) => {
                let idle = conn.in_flight.load(Ordering::Acquire) == 0
                    && Instant::now() >= conn.idle_deadline(limits.idle_timeout);
                if idle {
                    tracing::debug!("status page: idle connection closed");
                    return;
                }
            }
        }
    }
}

/// A request running on a connection, from the handler's start until its answer is ready; the
/// connection's idle clock starts again when it ends.
struct Running(Arc<Conn>);

impl Running {
    fn start(conn: &Arc<Conn>) -> Running {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        Running(conn.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A stream that notes on its connection when a byte moves.
struct Tracked {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_at_most_a_quarter_of_the_descriptor_limit() {
        let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .expect("getrlimit");
        let quarter = usize::try_from(soft / 4).unwrap_or(usize::MAX);
        assert_eq!(connection_cap(usize::MAX), quarter.max(1));
        assert_eq!(connection_cap(3), 3.min(quarter).max(1));
        assert_eq!(connection_cap(0), 1);
    }

    #[test]
    fn past_the_cap_the_connection_idle_longest_makes_room_unless_all_are_busy() {
        let registry = Registry {
            base: Instant::now(),
            open: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            shed: AtomicU64::new(0),
        };
        let (a, conn_a) = registry.admit(2).expect("a slot");
        let (_, conn_b) = registry.admit(2).expect("a slot");
        conn_a.last_io_ms.store(5, Ordering::Release);
        conn_b.last_io_ms.store(9, Ordering::Release);
        let running_b = Running::start(&conn_b);
        // a is idle longest: it goes.
        let (_, conn_c) = registry.admit(2).expect("room made");
        assert!(!registry.open.lock().expect("lock").contains_key(&a));
        let running_c = Running::start(&conn_c);
        // b and c both run a request: nothing can go.
        assert!(registry.admit(2).is_none());
        drop((running_b, running_c));
        assert!(registry.admit(2).is_some());
    }
}
