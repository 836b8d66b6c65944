//! The status page under connections that never finish: the real `serve` on 127.0.0.1, thousands
//! of idle TCP connections, a client that trickles its request head, and one that keeps its
//! connection busy. Descriptors are counted in /proc/self/fd (the server runs in this process).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use supercp_audit::Journal;
use supercp_status::{serve, Limits, NodeInfo, Shared, StatusConfig};

/// Idle connections opened in the flood.
const FLOOD: usize = 4000;
/// The page's connection cap in these tests.
const CAP: usize = 200;

/// One test at a time: the flood counts this process's descriptors.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Page {
    bind: SocketAddr,
    // Dropped in this order: the server, its journal, then the next test may start.
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    _one: MutexGuard<'static, ()>,
}

/// The real `serve` with `limits`, listening when this returns.
fn start(limits: Limits) -> Page {
    let one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit.db");
    let journal = Arc::new(
        runtime
            .block_on(Journal::open(path.to_str().expect("utf-8 path")))
            .expect("open the journal"),
    );
    let port = supercp_testkit::services::free_port();
    let bind: SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
    let config = StatusConfig {
        bind,
        token: None,
        open_on_loopback: true,
        limits,
    };
    let node = NodeInfo {
        node: "web1".into(),
        roles: vec![],
    };
    let task = runtime.spawn(serve(config, journal, node, Shared::default()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(bind).is_err() {
        assert!(!task.is_finished(), "serve stopped early");
        assert!(Instant::now() < deadline, "serve never listened on {bind}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Page {
        bind,
        _runtime: runtime,
        _dir: dir,
        _one: one,
    }
}

/// Enough descriptors for the flood on both ends, within the hard limit.
fn raise_nofile(want: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let target = want.min(hard);
    if soft < target {
        setrlimit(Resource::RLIMIT_NOFILE, target, hard).expect("setrlimit");
    }
    assert!(
        target >= (FLOOD + CAP + 200) as u64,
        "RLIMIT_NOFILE's hard limit {hard} is too low for {FLOOD} connections"
    );
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// One `GET /healthz` on a new connection: the time it took, panicking unless it is `ok`.
fn healthz(bind: SocketAddr) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(bind).expect("connect for /healthz");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send /healthz");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read /healthz");
    assert!(
        answer.starts_with("HTTP/1.1 200 ") && answer.ends_with("\r\n\r\nok"),
        "{answer:?}"
    );
    started.elapsed()
}

/// Whether the server closed `stream` (EOF or reset), waiting at most `wait`.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).expect("a read timeout");
    let mut byte = [0u8; 512];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => return true,
            // A 503 or another answer: read on to the end.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn thousands_of_idle_connections_neither_exhaust_descriptors_nor_stop_healthz() {
    raise_nofile(16_384);
    let idle_timeout = Duration::from_secs(3);
    let page = start(Limits {
        max_connections: CAP,
        // Longer than the test: only the idle timeout and the cap close connections here.
        header_read_timeout: Duration::from_secs(120),
        idle_timeout,
    });
    let baseline = open_fds();
    let mut idle = Vec::with_capacity(FLOOD);
    let mut slowest = Duration::ZERO;
    for i in 0..FLOOD {
        idle.push(TcpStream::connect(page.bind).expect("connect an idle client"));
        if (i + 1).is_multiple_of(400) {
            slowest = slowest.max(healthz(page.bind));
        }
    }
    let flooded = Instant::now();
    assert!(
        slowest < Duration::from_secs(1),
        "/healthz took {slowest:?} during the flood"
    );
    // The server keeps at most the cap (the connections closed to make room go at once).
    let deadline = Instant::now() + Duration::from_secs(1);
    let server_side = loop {
        let server_side = open_fds().saturating_sub(baseline + FLOOD);
        if server_side <= CAP + 8 || Instant::now() > deadline {
            break server_side;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        server_side <= CAP + 8,
        "the server holds {server_side} descriptors for {FLOOD} idle clients (cap {CAP})"
    );
    // The oldest were closed to make room; the newest wait for the idle timeout.
    assert!(closed_within(&mut idle[0], Duration::from_millis(500)));
    let newest = idle.last_mut().expect("a client");
    assert!(
        !closed_within(newest, Duration::from_millis(200)),
        "the newest idle client was closed before its idle timeout"
    );
    assert!(flooded.elapsed() < idle_timeout, "the checks took too long");
    // Every idle client is closed by its idle timeout, with margin for a loaded machine.
    let deadline = flooded + idle_timeout + Duration::from_secs(5);
    for (i, stream) in idle.iter_mut().enumerate() {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        assert!(closed_within(stream, wait), "idle client {i} still open");
    }
    drop(idle);
    assert!(healthz(page.bind) < Duration::from_secs(1));
    let deadline = Instant::now() + Duration::from_secs(2);
    while open_fds() > baseline + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(open_fds() <= baseline + 2, "descriptors left behind");
}

#[test]
fn a_request_head_that_trickles_in_is_cut_at_the_header_timeout() {
    let page = start(Limits {
        max_connections: CAP,
        header_read_timeout: Duration::from_secs(1),
        // Longer than the test: bytes keep moving anyway.
        idle_timeout: Duration::from_secs(60),
    });
    let started = Instant::now();
    let mut stream = TcpStream::connect(page.bind).expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("the request line");
    let closed = loop {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still open after 10 s"
        );
        if stream.write_all(b"X-Slow: 1\r\n").is_err()
            || closed_within(&mut stream, Duration::from_millis(200))
        {
            break started.elapsed();
        }
    };
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(4),
        "closed after {closed:?}, the header timeout is 1 s"
    );
}

#[test]
fn a_kept_alive_connection_in_use_stays_open_and_closes_once_idle() {
    let idle_timeout = Duration::from_secs(1);
    let page = start(Limits {
        max_connections: CAP,
        header_read_timeout: Duration::from_secs(30),
        idle_timeout,
    });
    let mut stream = TcpStream::connect(page.bind).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    let started = Instant::now();
    // Eight requests 400 ms apart: 3.2 s on one connection, longer than the idle timeout.
    for i in 0..8 {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while !answer.ends_with(b"\r\n\r\nok") {
            let n = stream
                .read(&mut byte)
                .unwrap_or_else(|e| panic!("answer {i}: {e}"));
            assert_eq!(n, 1, "answer {i}: closed after {:?}", started.elapsed());
            answer.push(byte[0]);
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    assert!(started.elapsed() > idle_timeout * 3);
    let idle_since = Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(5)));
    assert!(idle_since.elapsed() >= Duration::from_millis(500));
}
