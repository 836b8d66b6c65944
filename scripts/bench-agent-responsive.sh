#!/usr/bin/env bash
# SuperCP agent responsiveness: does the agent keep answering while its first apply runs?
#
# Generates the repo of TENANTS tenants (2 domains each, scripts/gen-repo.py), makes it a Git
# repository, and starts `supercp agent` on it (a `file://` remote) against a fresh state dir
# with the sandbox node's shape: every object is missing, so the first run writes the whole
# node (about 127,000 objects at 10,000 tenants) and runs the nginx and php-fpm checks over it.
# From the moment the agent is up until its first run is recorded, two pollers, one thread
# each, ask every POLL_MS ms (a new connection each time, as a load balancer or a monitoring
# check would):
#   - GET /healthz on the status page (agent.statusBind on 127.0.0.1);
#   - the control socket's `status` JSON-RPC method (one request line, one answer line).
# A request that takes longer than the interval delays that poller's next one, so a page that
# stops answering shows both as a slow answer and as fewer answers.
# Reported per endpoint: answers, failures, median, p99 and max latency, over the first run's
# own window (the journal's started_at .. finished_at) and over the whole poll, and how long
# the first run took. Target (issue 11, item 6): every answer within 0.5 s.
#
# Usage:   scripts/bench-agent-responsive.sh    (as root on Debian 12, with python3 and git)
#   SUPERCP=/path/to/supercp  use this binary (otherwise: cargo build --release -p supercp-cli)
#   TENANTS=10000             tenants to generate (2 domains each)
#   POLL_MS=100               milliseconds between two requests of one poller
#   REQUEST_TIMEOUT=60        seconds one request may take before it counts as failed
#   BENCH_TMP=/tmp            where the temp repo and state dir go (keep it on a real disk:
#                             on tmpfs syncfs is free and the first run means nothing)
# The node file uses only agent settings that older binaries know too (statusBind, socket,
# git, pollSeconds, driftScanSeconds): on a node with `manageOwnership: false` the page on
# loopback needs no token (the default of statusOpen there), so no token file is written.
# Exit status: 0 when every answer of both endpoints came within 0.5 s, 1 otherwise or when a
# step fails. The temp dir and the agent are removed/stopped on exit, also on Ctrl-C.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TENANTS=${TENANTS:-10000}
POLL_MS=${POLL_MS:-100}
REQUEST_TIMEOUT=${REQUEST_TIMEOUT:-60}
BENCH_TMP=${BENCH_TMP:-${TMPDIR:-/tmp}}
TARGET_S=0.5
FIRST_RUN_LIMIT=600 # seconds: give up when the first run has not finished by then

log() { printf 'bench-agent: %s\n' "$*" >&2; }
die() { printf 'bench-agent: error: %s\n' "$*" >&2; exit 1; }

case "$TENANTS$POLL_MS$REQUEST_TIMEOUT" in *[!0-9]*) die "TENANTS, POLL_MS and REQUEST_TIMEOUT must be whole numbers" ;; esac
command -v python3 >/dev/null || die "python3 is missing: apt-get install python3"
command -v git >/dev/null || die "git is missing: apt-get install git"
command -v jq >/dev/null || die "jq is missing: apt-get install jq"

# shellcheck source=scripts/bench-common.sh
. "$ROOT/scripts/bench-common.sh"
bench_binary

WORK=$(mktemp -d "$BENCH_TMP/supercp-bench-agent.XXXXXX")
AGENT_PID=""
POLLER_PID=""
cleanup() {
    # The poller first (it only reads), then the agent: SIGTERM stops it between runs, so a run
    # still going is waited for; after 60 s it is killed.
    if [ -n "$POLLER_PID" ]; then kill "$POLLER_PID" 2>/dev/null || true; wait "$POLLER_PID" 2>/dev/null || true; fi
    if [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; then
        kill -TERM "$AGENT_PID" 2>/dev/null || true
        for _ in $(seq 600); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$AGENT_PID" 2>/dev/null || true
        wait "$AGENT_PID" 2>/dev/null || true
    fi
    log "removing $WORK"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- machine and binary ----------------------------------------------------------------------
FS=$(df -PT "$WORK" | awk 'NR == 2 { print $2 " (" $1 ")" }')
case "$FS" in tmpfs*) log "warning: $WORK is on tmpfs: the first run's syncfs costs nothing there" ;; esac
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
log "machine: $(nproc) cpus, $MEM; temp dirs on $FS; load $LOAD0"
log "binary: $BINARY"

# --- 1. the repo, as a Git repository (the agent's remote) -------------------------------------
REPO=$WORK/repo
python3 "$ROOT/scripts/gen-repo.py" "$REPO" --tenants "$TENANTS" 2>/dev/null
DOMAINS=$(grep -rh '^kind: Domain' "$REPO" | wc -l)
git -C "$REPO" -c init.defaultBranch=main init -q
git -C "$REPO" add -A
git -C "$REPO" -c user.name=bench -c user.email=bench@example.test commit -q -m "bench: the generated repo"
log "repo: $TENANTS tenants, $DOMAINS domains, committed in $REPO"

# --- 2. the node file: the sandbox node's shape, plus the agent ---------------------------------
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
STATE=$WORK/state
SOCKET=$WORK/agent.sock
NODE=$WORK/node.yaml
# The sandbox node as it is, plus the agent. No poll and no drift scan while measured (a day
# each): only the first run happens.
cp "$ROOT/examples/nodes/sandbox.yaml" "$NODE"
cat >>"$NODE" <<EOF
  agent:
    git: { url: "file://$REPO", branch: main, pollSeconds: 86400 }
    driftScanSeconds: 86400
    socket: "$SOCKET"
    statusBind: "127.0.0.1:$PORT"
EOF
grep -q '^  root: "{state}/sandbox"$' "$NODE" || die "examples/nodes/sandbox.yaml changed shape: no {state}/sandbox root"

# --- 3. the agent and the pollers --------------------------------------------------------------
# Logs: warnings, plus the agent's own info lines ("agent started", "reconciled"), which tell
# the poller when the first run is over without asking the journal while it is being written.
log "starting the agent on 127.0.0.1:$PORT and $SOCKET (state $STATE)"
T0=${EPOCHREALTIME/./}
RUST_LOG=warn,supercp_agent=info "$SUPERCP" --state "$STATE" agent --node "$NODE" >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!

python3 - "$PORT" "$SOCKET" "$WORK/agent.log" "$AGENT_PID" "$POLL_MS" "$REQUEST_TIMEOUT" \
    "$FIRST_RUN_LIMIT" "$WORK/samples.tsv" >"$WORK/poller.out" <<'EOF' &
# Two pollers (HTTP /healthz, socket `status`) until the agent logs its first run's end.
# Writes one line per request: endpoint, unix ms at its start, latency ms, ok|error text.
import json, os, socket, sys, threading, time

port, sock_path, agent_log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
agent_pid, interval = int(sys.argv[4]), int(sys.argv[5]) / 1000
timeout, limit, out_path = float(sys.argv[6]), float(sys.argv[7]), sys.argv[8]
stop = threading.Event()
lock = threading.Lock()
out = open(out_path, "w")

def recv_until(s, deadline, done):
    """Reads until done(data) or EOF; the whole request shares one deadline."""
    data = b""
    while not done(data):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        s.settimeout(left)
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data

def healthz(deadline):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = recv_until(s, deadline, lambda d: False)  # Connection: close: read to EOF
    if not data.startswith(b"HTTP/1.1 200"):
        raise ValueError(data.split(b"\r\n", 1)[0].decode(errors="replace") or "empty answer")

def status(deadline):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"status"}\n')
        data = recv_until(s, deadline, lambda d: d.endswith(b"\n"))
    answer = json.loads(data)
    if "result" not in answer:
        raise ValueError(f"no result: {answer.get('error')}")

def poll(name, ask):
    up = False  # failures before the first answer mean "not listening yet" and are not counted
    while not stop.is_set():
        start, wall = time.monotonic(), time.time()
        try:
            ask(start + timeout)
            up, result = True, "ok"
        except (ConnectionRefusedError, FileNotFoundError):
            if not up:
                time.sleep(interval)
                continue
            result = "refused"
        except Exception as e:  # a timeout, a reset, a wrong answer: recorded as a failure
            result = f"{type(e).__name__}: {e}".replace("\t", " ").replace("\n", " ")
        ms = (time.monotonic() - start) * 1000
        with lock:
            out.write(f"{name}\t{wall * 1000:.0f}\t{ms:.1f}\t{result}\n")
            out.flush()
        time.sleep(max(0.0, start + interval - time.monotonic()))

threads = [threading.Thread(target=poll, args=a) for a in (("healthz", healthz), ("status", status))]
for t in threads:
    t.start()
# The end: the agent's "reconciled" line (a run recorded), a retry (the first run failed), the
# agent gone, or the limit.
began, why = time.monotonic(), "limit"
while time.monotonic() - began < limit:
    text = open(agent_log, errors="replace").read()
    if "reconciled" in text:
        why = "reconciled"
        break
    if "retrying with backoff" in text:
        why = "failed"
        break
    try:
        os.kill(agent_pid, 0)
    except ProcessLookupError:
        why = "exited"
        break
    time.sleep(0.05)
print(why, f"{time.time() * 1e6:.0f}", flush=True)  # unix microseconds, as $EPOCHREALTIME
stop.set()
for t in threads:
    t.join()
EOF
POLLER_PID=$!
wait "$POLLER_PID" || die "the poller failed"
POLLER_PID=""
read -r WHY SEEN_US <"$WORK/poller.out"
[ "$WHY" = reconciled ] || die "the agent's first run did not finish ($WHY): $(tail -n 5 "$WORK/agent.log")"
FIRST_WALL=$(awk -v a="$T0" -v b="$SEEN_US" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')

# The first run's window from the journal (the agent is idle now: nothing else writes it).
RUN=$("$SUPERCP" --state "$STATE" audit --node "$NODE" --format json --limit 5 \
    | jq -c '[.runs[] | select(.trigger == "commit")] | min_by(.id) | {id, outcome, started_at, finished_at, summary}')
read -r RUN_START RUN_END OUTCOME < <(jq -r '"\(.started_at) \(.finished_at) \(.outcome)"' <<<"$RUN")
[ "$OUTCOME" = succeeded ] || die "the first run is recorded as $OUTCOME: $RUN"
RUN_S=$(awk -v a="$RUN_START" -v b="$RUN_END" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
log "first run: $RUN"

# --- 4. report ---------------------------------------------------------------------------------
echo
echo "## SuperCP agent responsiveness during the first apply, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "- binary $BINARY"
echo "- machine: $(nproc) cpus, $MEM RAM; temp dirs on $FS; load $LOAD0 at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
echo "- repo: $TENANTS tenants, $DOMAINS domains; fresh state dir, the sandbox node's shape"
echo "- first run (journal): ${RUN_S} s, $(jq -r .summary <<<"$RUN"); agent start to its \"reconciled\" line: ${FIRST_WALL} s"
echo "- polled every ${POLL_MS} ms per endpoint, a new connection per request, timeout ${REQUEST_TIMEOUT} s"
echo
python3 - "$WORK/samples.tsv" "$RUN_START" "$RUN_END" "$TARGET_S" <<'EOF'
# One row per endpoint and window: answers, failures, median, p99 (nearest rank) and max.
import math, sys
path, start, end, target = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
rows = [l.rstrip("\n").split("\t", 3) for l in open(path) if l.strip()]
def stats(sel):
    ok = sorted(float(r[2]) for r in sel if r[3] == "ok")
    failed = [r for r in sel if r[3] != "ok"]
    if not ok:
        return len(sel), 0, len(failed), "-", "-", "-"
    med = ok[len(ok) // 2] if len(ok) % 2 else (ok[len(ok) // 2 - 1] + ok[len(ok) // 2]) / 2
    p99 = ok[max(0, math.ceil(0.99 * len(ok)) - 1)]
    return len(sel), len(ok), len(failed), f"{med:.1f}", f"{p99:.1f}", f"{ok[-1]:.1f}"
print("| endpoint | window | requests | answers | failed | median ms | p99 ms | max ms | all within 0.5 s |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
met, notes = True, []
for name, label in (("healthz", "GET /healthz"), ("status", "socket `status`")):
    mine = [r for r in rows if r[0] == name]
    # A request belongs to the run when it started inside it.
    for window, sel in (("first run", [r for r in mine if start <= int(r[1]) <= end]),
                        ("whole poll", mine)):
        n, ok, failed, med, p99, mx = stats(sel)
        within = failed == 0 and ok > 0 and float(mx) <= target * 1000
        met = met and within
        print(f"| {label} | {window} | {n} | {ok} | {failed} | {med} | {p99} | {mx} | {'yes' if within else 'NO'} |")
    # The slowest answers and where in the run they started, to match with the run's phases.
    slow = sorted(mine, key=lambda r: -float(r[2]))[:3]
    notes.append(f"- slowest {label}: " + ", ".join(
        f"{float(r[2]):.0f} ms at {(int(r[1]) - start) / 1000:+.1f} s" for r in slow))
    notes += [f"- failed {label} at {(int(r[1]) - start) / 1000:+.1f} s after {r[2]} ms: {r[3]}"
              for r in mine if r[3] != "ok"][:5]
print("\n(times relative to the first run's start)")
print("\n".join(notes))
sys.exit(0 if met else 1)
EOF
