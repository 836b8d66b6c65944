#!/usr/bin/env bash
# SuperCP DNS benchmark (issue 12): ZONES zones of 10 rrsets each in a real PowerDNS, against
# the floors of PowerDNS's own API measured in the same run.
#
# Starts a throwaway PowerDNS Authoritative (`pdns_server`, gsqlite3 backend, the settings of
# crates/supercp-testkit/src/pdns.rs) under a temp dir: DNS and HTTP API on free loopback ports,
# a random API key in a 0600 file. Generates a repo of ZONES zones (zNNNNN.test, `template:
# none`), owned 100 to a tenant, one file per zone; each zone declares 9 rrsets (A, AAAA, www
# CNAME, MX, mail A, SPF TXT, _dmarc TXT, CAA, _sip._tcp SRV) and the node adds the 10th, the
# apex NS set of its nameservers (the SOA, which every zone has, is not counted). The node file
# is the sandbox node with `roles: [dns]` and a `dns:` block. Then, with the binary of
# bench_binary:
#   1. floor C: every zone created once by POST with the body SuperCP sends, one request at a
#      time (as apply sends its steps); a plan over them must exit 0 (the bodies are SuperCP's);
#      then they are deleted again (not timed);
#   2. the first `supercp apply` (every zone created): wall time, peak RSS, the API requests it
#      sent by method (from PowerDNS's log: one line per request);
#   3. ROUNDS rounds of REPS interleaved repetitions of
#      - a no-change `supercp plan --detailed-exitcode` (exit 0 checked): wall time, peak RSS;
#      - floor A: list every zone once (`GET …/zones`, one request);
#      - floor B: fetch every zone's rrsets once (`GET …/zones/<zone>.?rrsets=true`, the request
#        SuperCP's observe sends) on as many threads as SuperCP's observe uses
#        (supercp_core::par::map_chunks: one per core, at most 8, one below 256 zones), each
#        with one http.client connection, the zones split into consecutive chunks as
#        map_chunks splits them. PowerDNS 4.7's web server answers every request with
#        `Connection: close`, so there, as for SuperCP's ureq agent, each request pays a new
#        connection whatever the client does;
#      the floors are timed inside one python3 process each (interpreter start not counted);
#   4. a no-change `supercp apply`: wall time; it must send no write (POST, PUT, PATCH, DELETE);
#   5. one record changed in one zone file (the apex A of the middle zone), `supercp apply`:
#      wall time; it must send exactly one write, a PATCH of that zone, and PowerDNS must then
#      serve the new value through the API; a plan after it exits 0;
#   6. drift the serials do not show: the same zone's apex A changed in PowerDNS's database by
#      SQL (as a hand edit of the backend or `pdnsutil edit-zone` without a serial bump can do):
#      the listing (floor A's request) must show the same serial as before, and `supercp plan
#      --detailed-exitcode` must still find it (exit 2, naming the zone); one apply puts it
#      back (one PATCH). This is why SuperCP's method has to pay floor B, not floor A;
#   7. one `supercp -v plan`: its load and render times (the "loaded and rendered" line), and
#      the time before and after that line.
# Target (issue 12): the no-change plan within 2x floor B (median of each round), and the
# one-record apply sends exactly one PATCH. Every figure is a median of its repetitions; rounds
# that disagree by more than 20 % are flagged in the report (the machine may be shared).
#
# Usage:   scripts/bench-dns.sh [ZONES [REPS]]   (Debian 12 with pdns-server,
#          pdns-backend-sqlite3, sqlite3, python3, curl and the `time` package; root is not
#          needed: a node with only the dns role writes no file)
# At 10,000 zones a run takes 13 to 25 minutes (floor C and the first apply 1 to 5 minutes
# each), depending on the load of the machine.
#   ZONES=10000               zones to generate (10 rrsets each), also the first argument
#   REPS=5                    repetitions per round of the plan and floors A and B, also the second
#   ROUNDS=2                  rounds of those repetitions
#   SUPERCP=/path/to/supercp  use this binary (otherwise: cargo build --release -p supercp-cli)
#   BENCH_TMP=/tmp            where the temp dir goes (repo, state dir, PowerDNS's database)
# Installs nothing. Exit status: 0 when every target and check is met, 1 otherwise or when a
# step fails. PowerDNS is stopped and the temp dir removed on exit, also on Ctrl-C.

set -euo pipefail
export LC_ALL=C # EPOCHREALTIME and awk with a decimal point

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ZONES=${1:-${ZONES:-10000}}
REPS=${2:-${REPS:-5}}
ROUNDS=${ROUNDS:-2}
BENCH_TMP=${BENCH_TMP:-${TMPDIR:-/tmp}}
ZONES_PER_TENANT=100
TARGET_RATIO=2
SCHEMA=/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql

log() { printf 'bench-dns: %s\n' "$*" >&2; }
die() { printf 'bench-dns: error: %s\n' "$*" >&2; exit 1; }

case "$ZONES$REPS$ROUNDS" in *[!0-9]*) die "ZONES, REPS and ROUNDS must be whole numbers" ;; esac
if [ "$ZONES" -lt 1 ] || [ "$ZONES" -gt 99999 ] || [ "$REPS" -lt 1 ] || [ "$ROUNDS" -lt 1 ]; then
    die "ZONES must be 1 to 99999, REPS and ROUNDS at least 1"
fi

# --- tools (none installed here: scripts/test.sh installs PowerDNS) ---------------------------
command -v pdns_server >/dev/null || die "pdns_server is missing: apt-get install pdns-server pdns-backend-sqlite3"
command -v sqlite3 >/dev/null || die "sqlite3 is missing: apt-get install sqlite3"
[ -f "$SCHEMA" ] || die "$SCHEMA is missing: apt-get install pdns-backend-sqlite3"
command -v python3 >/dev/null || die "python3 is missing: apt-get install python3"
command -v curl >/dev/null || die "curl is missing: apt-get install curl"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing: apt-get install time"

# shellcheck source=scripts/bench-common.sh
. "$ROOT/scripts/bench-common.sh"
bench_binary

WORK=$(mktemp -d "$BENCH_TMP/supercp-bench-dns.XXXXXX")
PDNS_PID=""
cleanup() {
    if [ -n "$PDNS_PID" ]; then
        kill -TERM "$PDNS_PID" 2>/dev/null || true
        wait "$PDNS_PID" 2>/dev/null || true
    fi
    log "removing $WORK"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers ---------------------------------------------------------------------------------
# Times are microseconds from $EPOCHREALTIME (no fork), shown as seconds with 3 decimals.
now() { printf -v "$1" '%s' "${EPOCHREALTIME/./}"; }
since() { # VAR START_US: VAR = seconds since START_US
    local us=$((${EPOCHREALTIME/./} - $2))
    printf -v "$1" '%d.%03d' $((us / 1000000)) $((us % 1000000 / 1000))
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
    END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f MiB", k / 1024 }'; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The API requests PowerDNS logged after line $1 of its log, as `METHOD PATH STATUS` (its web
# server writes one line per request: `[webserver] ID ADDR "METHOD PATH HTTP/1.1" STATUS SIZE`).
PDNS_LOG=$WORK/pdns/pdns.log
log_lines() { wc -l <"$PDNS_LOG"; }
requests_since() {
    tail -n "+$(($1 + 1))" "$PDNS_LOG" \
        | sed -n 's/.*\[webserver\] [^ ]* [^ ]* "\([A-Z]*\) \([^ ]*\) HTTP[^"]*" \([0-9]*\).*/\1 \2 \3/p'
}
writes_since() { requests_since "$1" | grep -v '^GET ' || true; }
by_method() { # LINE: "GET 123, POST 45" for the requests after LINE
    requests_since "$1" | awk '{ print $1 }' | sort | uniq -c | awk '{ printf "%s%s %d", (NR > 1 ? ", " : ""), $2, $1 }'
}

# sc NAME CMD ARGS…: `supercp $SC_FLAGS --state STATE CMD --repo REPO --node NODE ARGS…` under
# /usr/bin/time. Sets T (wall s), RSS (peak KiB), RC and START_US (when it started); output in
# $WORK/NAME.{out,err}.
SC_FLAGS=()
sc() {
    local name=$1 cmd=$2 t0
    shift 2
    now t0
    START_US=$t0
    RC=0
    /usr/bin/time -f '%M' -o "$WORK/$name.time" \
        "$SUPERCP" ${SC_FLAGS[@]+"${SC_FLAGS[@]}"} --state "$STATE" "$cmd" --repo "$REPO" --node "$NODE" "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.err" || RC=$?
    since T "$t0"
    RSS=$(tail -n 1 "$WORK/$name.time")
}
expect_rc() { # NAME WANT
    [ "$RC" = "$2" ] || { tail -n 20 "$WORK/$1.err" "$WORK/$1.out" >&2; die "supercp ($1) exited $RC, not $2"; }
}

# --- machine and binary ----------------------------------------------------------------------
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
FS=$(df -PT "$WORK" | awk 'NR == 2 { print $2 " (" $1 ")" }')
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
CORES=$(nproc) # the CPUs this process may run on, as available_parallelism counts them
THREADS=$((CORES < 8 ? CORES : 8))
if [ "$ZONES" -lt 256 ]; then THREADS=1; fi
PDNS_VERSION=$({ pdns_server --version 2>&1 || true; } | sed -n 's/.*\(PowerDNS Authoritative Server [0-9.]*\).*/\1/p' | head -n 1)
log "machine: $(nproc) cpus ($CPU), $MEM; temp dir on $FS; load $LOAD0"
log "binary: $BINARY"
log "server: ${PDNS_VERSION:-pdns_server}"

# --- 1. PowerDNS -------------------------------------------------------------------------------
PDNS_DIR=$WORK/pdns
mkdir -p "$PDNS_DIR/run"
sqlite3 "$PDNS_DIR/pdns.sqlite3" <"$SCHEMA"
DNS_PORT=$(free_port)
API_PORT=$(free_port)
while [ "$API_PORT" = "$DNS_PORT" ]; do API_PORT=$(free_port); done
KEY_FILE=$PDNS_DIR/api.key
(
    umask 077 # the key file and pdns.conf (which holds the key too) readable by us only
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$KEY_FILE"
    cat >"$PDNS_DIR/pdns.conf" <<EOF
launch=gsqlite3
gsqlite3-database=$PDNS_DIR/pdns.sqlite3
gsqlite3-dnssec=yes
local-address=127.0.0.1
local-port=$DNS_PORT
socket-dir=$PDNS_DIR/run
api=yes
api-key=$(cat "$KEY_FILE")
webserver=yes
webserver-address=127.0.0.1
webserver-port=$API_PORT
webserver-allow-from=127.0.0.0/8
daemon=no
guardian=no
disable-syslog=yes
security-poll-suffix=
loglevel=6
webserver-loglevel=normal
EOF
)
API=http://127.0.0.1:$API_PORT/api/v1/servers/localhost
api() { curl -sS --max-time 60 -H "X-API-Key: $(cat "$KEY_FILE")" "$@"; }
pdns_server --config-dir="$PDNS_DIR" >"$PDNS_LOG" 2>&1 &
PDNS_PID=$!
for _ in $(seq 200); do
    if api -o /dev/null -f "$API" 2>/dev/null; then break; fi
    kill -0 "$PDNS_PID" 2>/dev/null || die "pdns_server exited: $(tail -n 5 "$PDNS_LOG")"
    sleep 0.1
done
api -o /dev/null -f "$API" || die "PowerDNS's API did not answer within 20 s: $(tail -n 5 "$PDNS_LOG")"
log "PowerDNS up: DNS 127.0.0.1:$DNS_PORT, API 127.0.0.1:$API_PORT (pid $PDNS_PID)"

# --- 2. the repo and the node file -------------------------------------------------------------
REPO=$WORK/repo
STATE=$WORK/state
NODE=$WORK/node.yaml
python3 - "$REPO" "$ZONES" "$ZONES_PER_TENANT" "$WORK/bodies.jsonl" <<'EOF'
# One Package, one folder per tenant (tNNN) with its Tenant file and one file per zone it owns.
# Zones are zNNNNN.test: siblings under .test, so none is nested in another tenant's zone.
# Also writes, one a line, the body of the POST that creates each zone as SuperCP sends it
# (crates/supercp-drivers/src/dns.rs: canonical values, the node's apex NS with a TTL of a day,
# the SOA SuperCP writes): what the first apply's floor (floor C) sends.
import json, os, sys
out, zones, per, bodies_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
os.makedirs(out)
bodies = open(bodies_path, "w")
with open(os.path.join(out, "packages.yaml"), "w") as f:
    f.write("apiVersion: supercp/v1\nkind: Package\nmetadata: {name: dns}\nspec: {maxDomains: 1}\n")
for i in range(1, zones + 1):
    t = f"t{(i - 1) // per + 1:03d}"
    folder = os.path.join(out, "customers", t)
    if (i - 1) % per == 0:
        os.makedirs(folder)
        with open(os.path.join(folder, "tenant.yaml"), "w") as f:
            f.write(f"apiVersion: supercp/v1\nkind: Tenant\nmetadata: {{name: {t}}}\nspec: {{package: dns}}\n")
    z = f"z{i:05d}.test"
    a, b = i // 250 % 250 + 1, i % 250 + 1
    with open(os.path.join(folder, f"{z}.yaml"), "w") as f:
        f.write(f"""apiVersion: supercp/v1
kind: Zone
metadata: {{name: {z}}}
spec:
  tenant: {t}
  ttl: 3600
  template: none
  records:
    - {{name: "@", type: A, ttl: 300, values: ["10.{a}.{b}.1"]}}
    - {{name: "@", type: AAAA, values: ["2001:db8:{a:x}::{b:x}"]}}
    - {{name: www, type: CNAME, values: ["{z}."]}}
    - {{name: "@", type: MX, values: ["10 mail"]}}
    - {{name: mail, type: A, values: ["10.{a}.{b}.25"]}}
    - {{name: "@", type: TXT, values: ["v=spf1 mx -all"]}}
    - {{name: _dmarc, type: TXT, values: ["v=DMARC1; p=quarantine; rua=mailto:dmarc@{z}"]}}
    - {{name: "@", type: CAA, values: ['0 issue "letsencrypt.org"']}}
    - {{name: _sip._tcp, type: SRV, values: ["10 60 5060 sip.example.net."]}}
""")
    apex = f"{z}."
    rrsets = [
        (apex, "SOA", 3600, [f"ns1.bench.example. hostmaster.{apex} 1 10800 3600 604800 3600"]),
        (apex, "A", 300, [f"10.{a}.{b}.1"]),
        (apex, "AAAA", 3600, [f"2001:db8:{a:x}::{b:x}"]),
        (f"www.{apex}", "CNAME", 3600, [apex]),
        (apex, "MX", 3600, [f"10 mail.{apex}"]),
        (f"mail.{apex}", "A", 3600, [f"10.{a}.{b}.25"]),
        (apex, "TXT", 3600, ['"v=spf1 mx -all"']),
        (f"_dmarc.{apex}", "TXT", 3600, [f'"v=DMARC1; p=quarantine; rua=mailto:dmarc@{z}"']),
        (apex, "CAA", 3600, ['0 issue "letsencrypt.org"']),
        (f"_sip._tcp.{apex}", "SRV", 3600, ["10 60 5060 sip.example.net."]),
        (apex, "NS", 86400, ["ns1.bench.example.", "ns2.bench.example."]),
    ]
    body = {"name": apex, "kind": "Native", "soa_edit_api": "DEFAULT", "nameservers": [],
            "rrsets": [{"name": n, "type": t, "ttl": ttl,
                        "records": [{"content": c, "disabled": False} for c in cs]}
                       for n, t, ttl, cs in rrsets]}
    bodies.write(json.dumps(body) + "\n")
EOF
TENANTS=$(((ZONES + ZONES_PER_TENANT - 1) / ZONES_PER_TENANT))
# The zone whose record changes in step 4 and drifts in step 5.
MID=$(printf 'z%05d.test' $(((ZONES + 1) / 2)))
MID_FILE=$(grep -rl "name: $MID}" "$REPO/customers")
grep -q '^  roles: \[web\]$' "$ROOT/examples/nodes/sandbox.yaml" || die "examples/nodes/sandbox.yaml changed shape: no 'roles: [web]'"
sed -e 's/^  roles: \[web\]$/  roles: [dns]/' "$ROOT/examples/nodes/sandbox.yaml" | awk -v url="http://127.0.0.1:$API_PORT" -v key="$KEY_FILE" '
    { print }
    $0 == "spec:" && !done {
        print "  dns:"
        print "    apiUrl: " url
        print "    apiKeyFile: " key
        print "    serverId: localhost"
        print "    nameservers: [ns1.bench.example., ns2.bench.example.]"
        done = 1
    }' >"$NODE"
log "repo: $ZONES zones of 10 rrsets (9 declared + the node's apex NS), $TENANTS tenants, in $REPO"

# Validate once (not timed against anything): a repo this script wrote must load.
sc validate validate
expect_rc validate 0
VALIDATE_S=$T

# --- 3. the floors' client -----------------------------------------------------------------------
python3 - "$ZONES" >"$WORK/zones.txt" <<'EOF'
import sys
for i in range(1, int(sys.argv[1]) + 1):
    print(f"z{i:05d}.test.")
EOF
FLOOR_PY=$WORK/floor.py
cat >"$FLOOR_PY" <<'EOF'
# floor.py MODE PORT KEY_FILE THREADS ZONES_FILE BODIES_FILE: times the API requests only (the
# interpreter's start and reading the files are not counted) and prints the seconds. Checks
# every answer's status, and for `list` that it names every zone.
#   list    one GET …/zones (floor A)
#   rrsets  one GET …/zones/<zone>?rrsets=true per zone on THREADS threads (floor B)
#   create  one POST …/zones per zone with SuperCP's body, one at a time (floor C)
#   delete  one DELETE …/zones/<zone> per zone, one at a time (undoes `create`; gsqlite3
#           answers HTTP 500 to writes that overlap: its database is locked)
import http.client, json, sys, threading, time
mode, port, key_file, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
key = open(key_file).read().strip()
zones = open(sys.argv[5]).read().split()
base = "/api/v1/servers/localhost/zones"
errors = []

def run(method, items, want, path, body=None):
    # One connection object per thread; PowerDNS closes it after each answer and http.client
    # opens the next one by itself.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    for item in items:
        conn.request(method, path(item), body=body(item) if body else None, headers=headers)
        r = conn.getresponse()
        r.read()
        if r.status != want:
            errors.append(f"{method} {path(item)}: HTTP {r.status}")
    conn.close()

def on_threads(n, items, *args):
    # Consecutive chunks, as supercp_core::par::map_chunks splits the objects.
    size = -(-len(items) // n)
    workers = [threading.Thread(target=run, args=(args[0], items[i:i + size]) + args[1:])
               for i in range(0, len(items), size)]
    start = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.monotonic() - start

if mode == "list":
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", base, headers={"X-API-Key": key})
    r = conn.getresponse()
    body = r.read()
    took = time.monotonic() - start
    names = {z["name"] for z in json.loads(body)} if r.status == 200 else set()
    if r.status != 200 or not set(zones) <= names:
        errors.append(f"listing: HTTP {r.status}, {len(names)} zones")
elif mode == "rrsets":
    took = on_threads(threads, zones, "GET", 200, lambda z: f"{base}/{z}?rrsets=true")
elif mode == "create":
    bodies = open(sys.argv[6]).read().splitlines()
    took = on_threads(1, bodies, "POST", 201, lambda b: base, lambda b: b)
elif mode == "delete":
    took = on_threads(1, zones, "DELETE", 204, lambda z: f"{base}/{z}")
if errors:
    sys.exit(f"floor {mode}: {len(errors)} failed: {errors[:3]}")
print(f"{took:.3f}")
EOF
floor() { # MODE: sets T
    T=$(python3 "$FLOOR_PY" "$1" "$API_PORT" "$KEY_FILE" "$THREADS" "$WORK/zones.txt" "$WORK/bodies.jsonl") \
        || die "floor $1 failed"
}

# --- 4. the first apply and its floor --------------------------------------------------------
# Floor C: the POSTs a first apply cannot do without, sent as apply sends its steps (one at a
# time), with SuperCP's bodies; then the zones are deleted again (not timed) and SuperCP
# creates them.
log "floor C: creating $ZONES zones by POST, one at a time"
floor create
FLOOR_C=$T
# What floor C created is what SuperCP wants: a plan finds nothing to change.
sc floor-c-plan plan --detailed-exitcode
FLOOR_C_RC=$RC
if [ "$FLOOR_C_RC" != 0 ]; then
    log "warning: floor C's zones are not what SuperCP wants (plan exit $FLOOR_C_RC): $(head -n 5 "$WORK/floor-c-plan.out" "$WORK/floor-c-plan.err")"
fi
floor delete
log "floor C: ${FLOOR_C} s; deleted again in $T s"
[ "$(api "$API/zones" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')" = 0 ] \
    || die "zones are left after deleting floor C's"

log "first apply: creating $ZONES zones"
L0=$(log_lines)
sc first-apply apply
expect_rc first-apply 0
FIRST_S=$T FIRST_RSS=$RSS
FIRST_REQ=$(by_method "$L0")
POSTS=$(requests_since "$L0" | grep -c '^POST .* 201$' || true)
[ "$POSTS" = "$ZONES" ] || die "the first apply created $POSTS zones (POST … 201), not $ZONES"
log "first apply: ${FIRST_S} s, peak RSS $(mib "$FIRST_RSS"); requests: $FIRST_REQ"

# --- 5. floors and the no-change plan, interleaved -------------------------------------------
ROUND_ROWS=()
ALL_PLAN=() ALL_A=() ALL_B=() ALL_RSS=()
PLAN_MEDIANS=() B_MEDIANS=() A_MEDIANS=()
MET_RATIO=yes
for round in $(seq "$ROUNDS"); do
    PLAN=() FA=() FB=() PRSS=()
    for rep in $(seq "$REPS"); do
        L0=$(log_lines)
        sc plan plan --detailed-exitcode
        expect_rc plan 0
        PLAN+=("$T") PRSS+=("$RSS")
        if [ "$round" = 1 ] && [ "$rep" = 1 ]; then
            PLAN_REQ=$(by_method "$L0")
            [ -z "$(writes_since "$L0")" ] || die "a plan wrote to PowerDNS: $(writes_since "$L0" | head -n 3)"
        fi
        floor list
        FA+=("$T")
        floor rrsets
        FB+=("$T")
        log "round $round rep $rep: plan ${PLAN[-1]} s, floor A ${FA[-1]} s, floor B ${FB[-1]} s"
    done
    MP=$(median "${PLAN[@]}") MA=$(median "${FA[@]}") MB=$(median "${FB[@]}")
    PLAN_MEDIANS+=("$MP") A_MEDIANS+=("$MA") B_MEDIANS+=("$MB")
    ALL_PLAN+=("${PLAN[*]}") ALL_A+=("${FA[*]}") ALL_B+=("${FB[*]}") ALL_RSS+=("$(median "${PRSS[@]}")")
    RB=$(ratio "$MP" "$MB")
    if awk -v r="$RB" -v t="$TARGET_RATIO" 'BEGIN { exit !(r > t) }'; then MET_RATIO=no; fi
    ROUND_ROWS+=("| $round | $MP s | $MA s | $MB s | ${RB}x | $(ratio "$MP" "$MA")x | $(mib "${ALL_RSS[-1]}") |")
done
# Rounds more than 20 % apart (plan or floor B): the machine was not steady.
SPREAD=$(printf '%s\n' "${PLAN_MEDIANS[@]}" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f", (hi / lo - 1) * 100 }')
SPREAD_B=$(printf '%s\n' "${B_MEDIANS[@]}" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f", (hi / lo - 1) * 100 }')

# --- 6. no-change apply ------------------------------------------------------------------------
L0=$(log_lines)
sc noop-apply apply
expect_rc noop-apply 0
NOOP_S=$T NOOP_REQ=$(by_method "$L0")
NOOP_WRITES=$(writes_since "$L0" | wc -l)

# --- 7. one record changed in one zone file ----------------------------------------------------
NEW_IP=192.0.2.77
grep -q '^    - {name: "@", type: A, ttl: 300, ' "$MID_FILE" || die "no apex A line in $MID_FILE"
sed -i "s/^    - {name: \"@\", type: A, ttl: 300, values: \[\"[0-9.]*\"\]}/    - {name: \"@\", type: A, ttl: 300, values: [\"$NEW_IP\"]}/" "$MID_FILE"
grep -qF "[\"$NEW_IP\"]" "$MID_FILE" || die "the edit of $MID_FILE did not take"
L0=$(log_lines)
sc one-apply apply
expect_rc one-apply 0
ONE_S=$T ONE_REQ=$(by_method "$L0")
ONE_WRITES=$(writes_since "$L0")
ONE_WANT="PATCH /api/v1/servers/localhost/zones/$MID. 204"
SERVED=$(api "$API/zones/$MID.?rrsets=true" | python3 -c '
import json, sys
z = json.load(sys.stdin)
print(" ".join(r["content"] for s in z["rrsets"] if s["name"] == sys.argv[1] and s["type"] == "A" for r in s["records"]))' "$MID.")
sc after-one plan --detailed-exitcode
AFTER_ONE_RC=$RC
if [ "$ONE_WRITES" = "$ONE_WANT" ] && [ "$SERVED" = "$NEW_IP" ] && [ "$AFTER_ONE_RC" = 0 ]; then MET_ONE=yes; else MET_ONE=no; fi

# --- 8. drift the serial does not show -----------------------------------------------------------
serial_of() { api "$API/zones" | python3 -c '
import json, sys
print(next(z["serial"] for z in json.load(sys.stdin) if z["name"] == sys.argv[1]))' "$1."; }
SERIAL_BEFORE=$(serial_of "$MID")
sqlite3 "$PDNS_DIR/pdns.sqlite3" \
    "UPDATE records SET content = '192.0.2.99' WHERE name = '$MID' AND type = 'A';"
SERIAL_AFTER=$(serial_of "$MID")
sc drift-plan plan --detailed-exitcode
DRIFT_RC=$RC
DRIFT_SEEN=$(grep -c "Zone/$MID" "$WORK/drift-plan.out" || true)
L0=$(log_lines)
sc drift-apply apply
expect_rc drift-apply 0
DRIFT_WRITES=$(writes_since "$L0")
if [ "$SERIAL_BEFORE" = "$SERIAL_AFTER" ] && [ "$DRIFT_RC" = 2 ] && [ "$DRIFT_SEEN" -gt 0 ] \
    && [ "$DRIFT_WRITES" = "$ONE_WANT" ]; then MET_DRIFT=yes; else MET_DRIFT=no; fi

# --- 9. where a plan's time goes ---------------------------------------------------------------
SC_FLAGS=(-v)
sc verbose-plan plan
SC_FLAGS=()
expect_rc verbose-plan 0
VERBOSE_S=$T
LOADED=$(grep -m 1 'loaded and rendered' "$WORK/verbose-plan.err" || true)
PHASES=$(sed -n 's/.*loaded and rendered load_ms=\([0-9]*\) render_ms=\([0-9]*\) resources=\([0-9]*\) objects=\([0-9]*\).*/load \1 ms, render \2 ms (\3 resources, \4 objects)/p' <<<"$LOADED")
if [ -n "$LOADED" ]; then
    # The line's own timestamp (UTC, microseconds) splits the run: up to it, starting and
    # loading; after it, the journal, observing every zone, diffing and the output.
    LOADED_US=$(date -u -d "${LOADED%%Z *}Z" +%s%6N)
    PHASES+=$(awk -v s="$START_US" -v l="$LOADED_US" -v t="$VERBOSE_S" \
        'BEGIN { printf "; start to that line %.2f s, the rest (journal, observe, diff, output) %.2f s", (l - s) / 1e6, t - (l - s) / 1e6 }')
fi

# --- 10. report ---------------------------------------------------------------------------------
yes_no() { if [ "$1" = yes ]; then echo yes; else echo NO; fi; }
echo
echo "## SuperCP DNS benchmark (issue 12), $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "- binary $BINARY"
echo "- server: ${PDNS_VERSION:-pdns_server}, gsqlite3 (dnssec=yes), API on 127.0.0.1; temp dir on $FS"
echo "- machine: $(nproc) cpus ($CPU), $MEM RAM; load $LOAD0 at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
echo "- repo: $ZONES zones x 10 rrsets (9 declared + the node's apex NS; plus the SOA), $TENANTS tenants, one file per zone"
echo "- SuperCP's observe and floor B: $THREADS thread(s), one GET per zone; every request a new connection (PowerDNS answers \`Connection: close\`)"
echo
echo '```'
echo "| figure                                         | value      | target            | met  |"
echo "| ---------------------------------------------- | ---------- | ----------------- | ---- |"
printf '| %-46s | %-10s | %-17s | %-4s |\n' "validate" "$VALIDATE_S s" "-" ""
printf '| %-46s | %-10s | %-17s | %-4s |\n' "first apply ($ZONES zones created)" "$FIRST_S s" "-" ""
printf '| %-46s | %-10s | %-17s | %-4s |\n' "floor C: POST every zone, one at a time" "$FLOOR_C s" "-" ""
printf '| %-46s | %-10s | %-17s | %-4s |\n' "first apply / floor C" "$(ratio "$FIRST_S" "$FLOOR_C")x" "-" ""
printf '| %-46s | %-10s | %-17s | %-4s |\n' "peak RSS, first apply" "$(mib "$FIRST_RSS")" "-" ""
for i in $(seq 0 $((ROUNDS - 1))); do
    r=$((i + 1))
    printf '| %-46s | %-10s | %-17s | %-4s |\n' "round $r: no-change plan (median of $REPS)" "${PLAN_MEDIANS[$i]} s" "-" ""
    printf '| %-46s | %-10s | %-17s | %-4s |\n' "round $r: floor A, list every zone" "${A_MEDIANS[$i]} s" "-" ""
    printf '| %-46s | %-10s | %-17s | %-4s |\n' "round $r: floor B, every zone's rrsets" "${B_MEDIANS[$i]} s" "-" ""
    rb=$(ratio "${PLAN_MEDIANS[$i]}" "${B_MEDIANS[$i]}")
    met=$(awk -v r="$rb" -v t="$TARGET_RATIO" 'BEGIN { print (r <= t) ? "yes" : "NO" }')
    printf '| %-46s | %-10s | %-17s | %-4s |\n' "round $r: plan / floor B" "${rb}x" "<= ${TARGET_RATIO}x" "$met"
    printf '| %-46s | %-10s | %-17s | %-4s |\n' "round $r: plan / floor A" "$(ratio "${PLAN_MEDIANS[$i]}" "${A_MEDIANS[$i]}")x" "-" ""
    printf '| %-46s | %-10s | %-17s | %-4s |\n' "round $r: peak RSS, no-change plan (median)" "$(mib "${ALL_RSS[$i]}")" "-" ""
done
printf '| %-46s | %-10s | %-17s | %-4s |\n' "no-change apply" "$NOOP_S s" "0 writes" "$( [ "$NOOP_WRITES" = 0 ] && echo yes || echo NO)"
printf '| %-46s | %-10s | %-17s | %-4s |\n' "apply after changing one record" "$ONE_S s" "exactly 1 PATCH" "$(yes_no "$MET_ONE")"
printf '| %-46s | %-10s | %-17s | %-4s |\n' "SQL edit, serial unchanged: plan finds it" "exit $DRIFT_RC" "exit 2, 1 PATCH" "$(yes_no "$MET_DRIFT")"
echo
for i in $(seq 0 $((ROUNDS - 1))); do
    echo "runs (s), round $((i + 1)): plan ${ALL_PLAN[$i]} | floor A ${ALL_A[$i]} | floor B ${ALL_B[$i]}"
done
echo "rounds apart: plan ${SPREAD} %, floor B ${SPREAD_B} %$( { [ "$SPREAD" -gt 20 ] || [ "$SPREAD_B" -gt 20 ]; } && echo ' (more than 20 %: the machine was not steady; read each round on its own)')"
echo "requests: first apply: $FIRST_REQ | no-change plan: $PLAN_REQ | no-change apply: $NOOP_REQ | one-record apply: $ONE_REQ"
echo "floor C's zones are what SuperCP wants (a plan over them exits 0): $( [ "$FLOOR_C_RC" = 0 ] && echo yes || echo "NO (exit $FLOOR_C_RC)")"
echo "writes of the no-change apply: $NOOP_WRITES"
echo "writes of the one-record apply: ${ONE_WRITES:-none} (want: $ONE_WANT); served afterwards: A $SERVED; plan after it exit $AFTER_ONE_RC"
echo "SQL edit of $MID: serial $SERIAL_BEFORE before, $SERIAL_AFTER after; plan exit $DRIFT_RC; put back by: ${DRIFT_WRITES:-nothing}"
echo "supercp -v plan (${VERBOSE_S} s): ${PHASES:-no \"loaded and rendered\" line}"
echo '```'

[ "$MET_RATIO" = yes ] && [ "$MET_ONE" = yes ] && [ "$NOOP_WRITES" = 0 ] && [ "$MET_DRIFT" = yes ]
