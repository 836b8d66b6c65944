//! systemd's notify protocol (`Type=notify`): one datagram to `$NOTIFY_SOCKET` for "ready" and
//! one per loop for the watchdog. Outside systemd (no `NOTIFY_SOCKET`) both do nothing.

use std::os::unix::net::UnixDatagram;

/// Tells systemd the agent has finished its first cycle.
pub fn ready() {
    send("READY=1");
}

/// Keeps systemd's watchdog (`WatchdogSec=`) from restarting the agent.
pub fn watchdog() {
    if std::env::var_os("WATCHDOG_USEC").is_some() {
        send("WATCHDOG=1");
    }
}

fn send(message: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let Ok(socket) = UnixDatagram::unbound() else {
        return;
    };
    // Never wait on the receiver: a full queue (nobody reading, or a slow systemd) drops the
    // datagram instead of stopping the agent's loop.
    if socket.set_nonblocking(true).is_err() {
        return;
    }
    // An abstract socket ("@name") is addressed with a leading NUL byte.
    let sent = if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|addr| socket.send_to_addr(message.as_bytes(), &addr))
    } else {
        socket.send_to(message.as_bytes(), &path)
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}
