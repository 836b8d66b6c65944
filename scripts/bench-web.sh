#!/usr/bin/env bash
# SuperCP web benchmark: a one-domain apply against real nginx, compared with nginx's own floor.
#
# Renders a repo of TENANTS tenants (2 domains each, scripts/gen-repo.py) for a node under a temp
# prefix, starts a real nginx on that config and measures, in one run (medians of REPS
# repetitions, interleaved so that the VM's drift hits every figure alike):
#   - the floor: one `nginx -t` over the whole config, and one reload: HUP to the master until a
#     request shows a vhost that was changed by hand just before (a bench vhost SuperCP does not
#     manage, left in place for the whole run so that both sides see the same config);
#   - SuperCP: `supercp apply` after adding an alias to one Domain in the repo, from the start of
#     the apply until nginx serves the new alias (not the 444 default server); apply's own wall
#     time too;
#   - nginx's RSS (master and workers) after the start and after all the reloads;
#   - the shape of the config: `nginx -t` over the same sites with the PHP socket path built from a
#     variable and with a literal `fastcgi_pass unix:…` per vhost, median of 3 each. One shape is
#     the built-in template's; the other is rendered by a second `supercp apply` with an override
#     of this checkout's templates/vhost.conf.tera, or, when that does not render with this binary
#     (built from another checkout), made from a copy of the rendered config (the report says which).
# Target (issue): SuperCP's one-domain apply <= 1.2 x (nginx -t + reload) + 0.1 s.
# PHP-FPM is not started: its gate only checks (when pool files change), it is no part of the
# figure. The report (Markdown, on stdout) is printed before the shapes are measured and the
# shapes table after; progress goes to stderr. See docs/performance.md.
#
# Usage:   scripts/bench-web.sh            (as root on Debian 12, with nginx, curl and python3)
#   SUPERCP=/path/to/supercp  use this binary (otherwise: cargo build --release -p supercp-cli)
#   TENANTS=10000             tenants to generate (2 domains each)
#   REPS=5                    repetitions of the timed floor and SuperCP measurements
#   BENCH_TMP=/tmp            where the temp repo, state dirs and node prefixes go (keep it on a
#                             real disk: on tmpfs syncfs is free and the apply figure means nothing)
# Exit status: 0 when the target is met, 1 when it is missed or a step fails.
# Installs the `time` package if /usr/bin/time is missing (peak RSS of `nginx -t`).
# At 10,000 tenants expect a few minutes (most of it the literal shape's `nginx -t`) and about
# 2 GiB of RAM for nginx. Ctrl-C stops nginx and removes the temp dir.

set -euo pipefail
export LC_ALL=C # EPOCHREALTIME and awk with a decimal point

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TENANTS=${TENANTS:-10000}
REPS=${REPS:-5}
SHAPE_REPS=3
BENCH_TMP=${BENCH_TMP:-${TMPDIR:-/tmp}}
POLL=0.01 # seconds between two requests while waiting for nginx to serve a change

log() { printf 'bench-web: %s\n' "$*" >&2; }
die() { printf 'bench-web: error: %s\n' "$*" >&2; exit 1; }

case "$TENANTS$REPS" in *[!0-9]*) die "TENANTS and REPS must be whole numbers" ;; esac
if [ "$TENANTS" -lt 2 ] || [ "$REPS" -lt 1 ]; then die "TENANTS must be at least 2 and REPS at least 1"; fi

# --- tools -----------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "run as root: nginx's master starts as root and its workers as www-data"
command -v nginx >/dev/null || die "nginx is missing: apt-get install nginx"
command -v curl >/dev/null || die "curl is missing: apt-get install curl"
command -v python3 >/dev/null || die "python3 is missing: apt-get install python3"
if [ ! -x /usr/bin/time ]; then
    command -v apt-get >/dev/null || die "/usr/bin/time is missing: apt-get install time"
    log "installing the Debian package 'time' (for the peak RSS of nginx -t)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null \
        || die "cannot install the 'time' package; install it and run again"
fi

# shellcheck source=scripts/bench-common.sh
. "$ROOT/scripts/bench-common.sh"
bench_binary

WORK=$(mktemp -d "$BENCH_TMP/supercp-bench-web.XXXXXX")
NGINX_PID=""
stop_nginx() {
    if [ -n "$NGINX_PID" ]; then
        kill -TERM "$NGINX_PID" 2>/dev/null || true # fast shutdown: the master stops its workers
        wait "$NGINX_PID" 2>/dev/null || true
        NGINX_PID=""
    fi
}
AGENT_PID=""
stop_agent() {
    if [ -n "$AGENT_PID" ]; then
        kill -TERM "$AGENT_PID" 2>/dev/null || true
        wait "$AGENT_PID" 2>/dev/null || true
        AGENT_PID=""
    fi
}
cleanup() {
    stop_agent
    stop_nginx
    log "removing $WORK"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
exec {NAPFD}<> <(:) # a pipe nobody writes to: `read -t` on it sleeps without forking

# --- helpers ---------------------------------------------------------------------------------
# Times are microseconds from $EPOCHREALTIME (no fork), shown as seconds with 3 decimals.
now() { printf -v "$1" '%s' "${EPOCHREALTIME/./}"; }
since() { # VAR START_US: VAR = seconds since START_US
    local us=$((${EPOCHREALTIME/./} - $2))
    printf -v "$1" '%d.%03d' $((us / 1000000)) $((us % 1000000 / 1000))
}
nap() { read -r -t "$1" -u "$NAPFD" || true; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
    END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
max() { printf '%s\n' "$@" | sort -g | tail -n 1; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f MiB", k / 1024 }'; }
kib_of() { awk -v k="$1" '$1 == k ":" { print $2; exit }' "$2" 2>/dev/null || true; } # FIELD FILE

# probe HOST: one request to the nginx under test. Sets CODE (000 when nginx closed the
# connection without an answer: the default server's 444), BODY and PROBE_RC (curl's exit code:
# 7 when nothing listens, 52 for the 444's empty reply).
probe() {
    local out
    PROBE_RC=0
    out=$(curl -s --max-time 5 -o - -w '\n%{http_code}' -H "Host: $1" "http://127.0.0.1:$PORT/" 2>/dev/null) \
        || PROBE_RC=$?
    CODE=${out##*$'\n'}
    BODY=${out%$'\n'*}
}
# wait_served HOST [BODY]: requests HOST every $POLL s until nginx answers it (with BODY, when
# given). Dies after 300 s or when nginx exits.
wait_served() {
    local deadline=$((SECONDS + 300))
    while :; do
        probe "$1"
        if [ "$CODE" != 000 ] && { [ $# -lt 2 ] || [ "$BODY" = "$2" ]; }; then return 0; fi
        kill -0 "$NGINX_PID" 2>/dev/null || die "nginx exited: $(tail -n 5 "$WORK/nginx.out")"
        [ "$SECONDS" -lt "$deadline" ] || die "nginx did not serve $1${2:+ with \"$2\"} within 300 s (last: HTTP $CODE \"$BODY\")"
        nap "$POLL"
    done
}
kids() { # KIDS = the pids of the nginx master's children
    KIDS=()
    read -r -a KIDS <"/proc/$NGINX_PID/task/$NGINX_PID/children" 2>/dev/null || true
}
old_worker() { grep -qa 'shutting down' "/proc/$1/cmdline" 2>/dev/null; } # PID: still on an older config
# settle: waits (at most 30 s) until the workers of an older config have exited after a reload.
# The new workers may answer before the old ones are even told to stop (the master sleeps 100 ms
# in between), so this waits for the configured number of workers, none shutting down.
settle() {
    local deadline=$((SECONDS + 30)) c busy
    while [ "$SECONDS" -lt "$deadline" ]; do
        kids
        busy=$(("${#KIDS[@]}" != WORKERS))
        for c in ${KIDS[@]+"${KIDS[@]}"}; do
            if old_worker "$c"; then busy=1; fi
        done
        [ "$busy" = 1 ] || return 0
        nap 0.02
    done
    log "warning: nginx has not settled on $WORKERS worker(s) 30 s after a reload"
}
# nginx_rss LABEL: one row of the RSS table (master, then each worker; KiB from /proc).
RSS_ROWS=()
nginx_rss() {
    local c workers="" n=0 rss pss
    kids
    for c in ${KIDS[@]+"${KIDS[@]}"}; do
        rss=$(kib_of VmRSS "/proc/$c/status")
        [ -n "$rss" ] || continue
        n=$((n + 1))
        workers+="${workers:+, }$(mib "$rss")"
        if old_worker "$c"; then workers+=" (shutting down)"; fi
    done
    rss=$(kib_of VmRSS "/proc/$NGINX_PID/status")
    pss=$(kib_of Pss "/proc/$NGINX_PID/smaps_rollup")
    RSS_ROWS+=("| $1 | $(mib "$rss") | $(mib "${pss:-0}") | $(mib "$(kib_of VmHWM "/proc/$NGINX_PID/status")") | $n: ${workers:-none} |")
    log "nginx RSS $1: master $(mib "$rss") (PSS $(mib "${pss:-0}")), $n worker(s): ${workers:-none}"
}
# nginx_t PREFIX: one `nginx -t` over the config under PREFIX (as the nginx gate runs it).
# Sets T (wall s) and T_RSS (peak KiB); appends what it printed (warnings) to $WORK/nginx-t.warn.
nginx_t() {
    local t0
    now t0
    /usr/bin/time -f '%M' -o "$WORK/time" \
        nginx -t -q -c "$1/etc/nginx/nginx.conf" -e "$1/var/log/nginx/error.log" >"$WORK/nginx-t.out" 2>&1 \
        || { cat "$WORK/nginx-t.out" >&2; die "nginx -t failed for $1"; }
    since T "$t0"
    T_RSS=$(tail -n 1 "$WORK/time")
    grep -v '^\s*$' "$WORK/nginx-t.out" >>"$WORK/nginx-t.warn" || true
}
# conf_files DIR: the .conf files of DIR, one a line (a glob of 20,000 paths would not fit the
# argument list of one command).
conf_files() { find "$1" -maxdepth 1 -name '*.conf' -type f | sort; }
count_matching() { # DIR FIXED_STRING: how many .conf files of DIR contain it
    { grep -rlF --include='*.conf' -e "$2" "$1" || true; } | wc -l
}
# sc_apply NAME STATE NODE: `supercp apply`, output in $WORK/NAME.{out,err}.
sc_apply() {
    if ! "$SUPERCP" --state "$2" apply --repo "$REPO" --node "$3" >"$WORK/$1.out" 2>"$WORK/$1.err"; then
        tail -n 20 "$WORK/$1.err" >&2
        die "supercp apply ($1) failed"
    fi
}
summary_of() { # NAME: apply's last output line, for the log
    tail -n 1 "$WORK/$1.err" "$WORK/$1.out" 2>/dev/null | grep -v '^\(==>.*\)\?$' | tail -n 1 || true
}

# --- machine ---------------------------------------------------------------------------------
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
FS=$(df -PT "$WORK" | awk 'NR == 2 { print $2 " (" $1 ")" }')
case "$FS" in tmpfs*) log "warning: $WORK is on tmpfs: apply's syncfs costs nothing there" ;; esac
NOFILE="soft $(ulimit -Sn), hard $(ulimit -Hn)"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- crates Cargo.toml Cargo.lock templates 2>/dev/null || echo ' + uncommitted changes')"
NGINX_VERSION=$(nginx -v 2>&1 | sed 's/^nginx version: //')
log "machine: $(nproc) cpus, $MEM, $CPU; temp dirs on $FS; open files $NOFILE"
log "binary: $BINARY; $NGINX_VERSION"

# --- 1. the repo -----------------------------------------------------------------------------
REPO=$WORK/repo
python3 "$ROOT/scripts/gen-repo.py" "$REPO" --tenants "$TENANTS" 2>/dev/null
DOMAINS=$(grep -rh '^kind: Domain' "$REPO" | wc -l)
log "repo: $TENANTS tenants, $DOMAINS domains in $REPO"

# --- 2. the node files -------------------------------------------------------------------------
# The shape of examples/nodes/sandbox.yaml, with an absolute prefix, a free port, node-wide
# nginx logs (two log files per site would need 2 descriptors per site in every nginx process)
# and PHP-FPM checked but never reloaded (it is not started).
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
write_node() { # FILE PREFIX [TEMPLATE_DIR]
    local template_line=""
    if [ $# -ge 3 ]; then template_line="  templateDir: \"$3\""$'\n'; fi
    cat >"$1" <<EOF
# Written by scripts/bench-web.sh: the shape of examples/nodes/sandbox.yaml under an absolute prefix.
apiVersion: supercp/v1
kind: Node
metadata:
  name: bench-web
spec:
  roles: [web]
  root: "$2"
  manageOwnership: false
  auditUrl: "sqlite:{state}/audit.db"
${template_line}  homeDir: /home
  logDir: /var/log/supercp
  logrotate: /etc/logrotate.d/supercp
  web:
    sitesDir: /etc/nginx/sites-enabled
    mainConfig: /etc/nginx/nginx.conf
    listen: ["127.0.0.1:$PORT"]
    siteLogs: Node
    httpConfig: /etc/nginx/conf.d/supercp.conf
  php:
    versions: ["8.2"]
    poolDir: "/etc/php/{version}/fpm/pool.d"
    socketDir: /run/php
    mainConfig: "/etc/php/{version}/fpm/php-fpm.conf"
    runAs: nobody
    runAsGroup: nogroup
  gates:
    - name: nginx
      check: [nginx, -t, -q, -c, "{root}/etc/nginx/nginx.conf", -e, "{root}/var/log/nginx/error.log"]
      reloadSignal: { pidFile: "{root}/run/nginx.pid", signal: HUP }
    - name: php-fpm
      check: [php-fpm8.2, -t, -y, "{root}/etc/php/8.2/fpm/php-fpm.conf"]
      optional: true
  # The agent follows the repo as a Git remote; the benchmark wakes it with SIGHUP right after
  # each commit (what a post-receive hook does), so no poll or scan runs in between.
  agent:
    git: { url: "file://$REPO", branch: main, pollSeconds: 86400 }
    driftScanSeconds: 86400
    socket: "$WORK/agent.sock"
    statusBind: ""
EOF
}
P1=$WORK/prefix
S1=$WORK/state
mkdir -p "$P1"
write_node "$WORK/node.yaml" "$P1"
CONF=$P1/etc/nginx/nginx.conf
SITES=$P1/etc/nginx/sites-enabled

# --- 3. first apply, then a real nginx on the rendered config -----------------------------------
log "first apply into $S1 (not part of the target)"
now t0
sc_apply first "$S1" "$WORK/node.yaml"
since FIRST_APPLY "$t0"
log "first apply: ${FIRST_APPLY}s: $(summary_of first)"
[ -f "$CONF" ] || die "apply rendered no $CONF"
WORKERS=$(awk '$1 == "worker_processes" { sub(/;$/, "", $2); print $2; exit }' "$CONF")
case "${WORKERS:-1}" in auto) WORKERS=$(nproc) ;; *[!0-9]*) die "cannot read worker_processes in $CONF" ;; *) WORKERS=${WORKERS:-1} ;; esac

# In the foreground of a background job (a daemonized master would be re-parented). setpriv
# (util-linux) has the kernel stop it should this shell die without running its EXIT trap.
PDEATH=()
if setpriv --pdeathsig TERM true 2>/dev/null; then PDEATH=(setpriv --pdeathsig TERM); fi
now t0
${PDEATH[@]+"${PDEATH[@]}"} nginx -c "$CONF" -e "$P1/var/log/nginx/error.log" -g 'daemon off;' >"$WORK/nginx.out" 2>&1 &
NGINX_PID=$!
while :; do
    probe supercp-bench-unknown.test
    [ "$PROBE_RC" = 7 ] || break # anything but "connection refused": nginx listens
    kill -0 "$NGINX_PID" 2>/dev/null || { NGINX_PID=""; die "nginx did not start: $(tail -n 5 "$WORK/nginx.out")"; }
    nap "$POLL"
done
since NGINX_START "$t0"
[ "$CODE" = 000 ] || die "an unknown host got HTTP $CODE: the 444 default server is missing"
[ "$(cat "$P1/run/nginx.pid")" = "$NGINX_PID" ] || die "$P1/run/nginx.pid does not hold the master's pid $NGINX_PID"
log "nginx (pid $NGINX_PID) answers on 127.0.0.1:$PORT after ${NGINX_START}s"
nginx_rss "after start"

# --- 4+5. the floor and SuperCP, interleaved ---------------------------------------------------
# The domain to change: one with an `aliases: [` line (the alias goes in inline, no line moves),
# not redirected, of a tenant that is not suspended, from the second half of the repo.
read -r EDIT_FILE EDIT_DOMAIN EDIT_LINE < <(python3 - "$REPO" <<'EOF'
import os, sys
repo = sys.argv[1]
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(repo, "customers")) for f in fs)
for path in files[len(files) // 2:] + files[:len(files) // 2]:
    text = open(path).read()
    if "suspended: true" in text:
        continue
    start = 1
    for doc in text.split("\n---\n"):
        lines = doc.split("\n")
        if "kind: Domain" in lines and not any(l.startswith("  redirectTo:") for l in lines):
            hits = [i for i, l in enumerate(lines) if l.startswith("  aliases: [")]
            if hits:
                name = next(l for l in lines if l.startswith("metadata:")).split("name: ")[1].rstrip("}")
                print(path, name, start + hits[0])
                sys.exit(0)
        start += len(lines) + 1  # the `---` line
sys.exit("no domain with aliases in the repo")
EOF
)
[ -n "${EDIT_LINE:-}" ] || die "found no domain to change"
cp "$EDIT_FILE" "$WORK/edit.orig"
log "SuperCP's change: an alias benchN.$EDIT_DOMAIN added to Domain/$EDIT_DOMAIN ($EDIT_FILE:$EDIT_LINE)"

# The agent: the repo becomes a Git repository, the agent's remote. Its first run (full) finds
# the node as the first apply left it.
git_repo() { git -C "$REPO" -c user.name=bench -c user.email=bench@example.test "$@"; }
[ -d "$REPO" ] && [ "$REPO" != / ] || die "no repo dir"
git_repo init -q -b main
git_repo add -A
git_repo commit -q -m "bench: the generated repo"
runs_with() { "$SUPERCP" --state "$S1" audit --node "$WORK/node.yaml" --format json --limit 500 2>/dev/null | grep -c "\"trigger\": \"$1\"" || true; }
${PDEATH[@]+"${PDEATH[@]}"} "$SUPERCP" --state "$S1" agent --node "$WORK/node.yaml" >"$WORK/agent.out" 2>&1 &
AGENT_PID=$!
now t0
until [ "$(runs_with commit)" -ge 1 ]; do
    kill -0 "$AGENT_PID" 2>/dev/null || die "the agent exited: $(tail -n 5 "$WORK/agent.out")"
    [ $((${EPOCHREALTIME/./} - t0)) -lt 300000000 ] || die "the agent's first run did not finish in 300 s"
    nap 0.2
done
since AGENT_FIRST "$t0"
log "agent (pid $AGENT_PID): first run (full) done after ${AGENT_FIRST}s"

# The floor's hand-edited vhost: not managed by SuperCP (apply leaves files it does not own
# alone), in place from the first reload on, so the floor and SuperCP reload the same config.
FLOOR_HOST=supercp-bench-floor.test
BENCH_SITE=$SITES/zz-supercp-bench.conf
write_bench_site() { # N
    cat >"$BENCH_SITE.tmp" <<EOF
# Not managed by SuperCP: scripts/bench-web.sh's own vhost, changed by hand before each reload.
server {
    listen 127.0.0.1:$PORT;
    server_name $FLOOR_HOST;
    default_type text/plain;
    return 200 "rep-$1";
}
EOF
    mv "$BENCH_SITE.tmp" "$BENCH_SITE"
}

NT=()      # nginx -t, s
NT_RSS=()  # nginx -t peak RSS, KiB
RL=()      # HUP until the changed bench vhost answers, s
SC=()      # supercp apply until the new alias answers, s
SC_OWN=()  # supercp apply's own wall time, s
AG=()      # the agent: SIGHUP after a commit until the new alias answers, s
: >"$WORK/nginx-t.warn"
for i in $(seq "$REPS"); do
    settle
    nginx_t "$P1"
    NT+=("$T")
    NT_RSS+=("$T_RSS")

    write_bench_site "$i"
    settle
    now t0
    kill -HUP "$NGINX_PID" 2>/dev/null || die "nginx is gone: $(tail -n 5 "$WORK/nginx.out")"
    wait_served "$FLOOR_HOST" "rep-$i"
    since RELOAD "$t0"
    RL+=("$RELOAD")

    alias="bench$i.$EDIT_DOMAIN"
    sed "${EDIT_LINE}s/^  aliases: \[/  aliases: [$alias, /" "$WORK/edit.orig" >"$EDIT_FILE"
    grep -q "aliases: \[$alias, " "$EDIT_FILE" || die "could not add $alias to $EDIT_FILE:$EDIT_LINE"
    probe "$alias"
    [ "$CODE" = 000 ] || die "$alias is served before the apply (HTTP $CODE)"
    settle
    now t0
    sc_apply "rep$i" "$S1" "$WORK/node.yaml"
    since OWN "$t0"
    wait_served "$alias"
    since TOTAL "$t0"
    SC+=("$TOTAL")
    SC_OWN+=("$OWN")
    log "rep $i: nginx -t ${T}s ($(mib "$T_RSS")); reload ${RELOAD}s; supercp apply ${OWN}s, $alias answers HTTP $CODE after ${TOTAL}s ($(summary_of "rep$i"))"

    # The agent: another alias, committed; SIGHUP as a post-receive hook would send it.
    agent_alias="agent$i.$EDIT_DOMAIN"
    sed -i "${EDIT_LINE}s/^  aliases: \[/  aliases: [$agent_alias, /" "$EDIT_FILE"
    git_repo commit -q -a -m "bench: alias $agent_alias"
    probe "$agent_alias"
    [ "$CODE" = 000 ] || die "$agent_alias is served before the agent ran (HTTP $CODE)"
    settle
    now t0
    kill -HUP "$AGENT_PID" 2>/dev/null || die "the agent is gone: $(tail -n 5 "$WORK/agent.out")"
    wait_served "$agent_alias"
    since AGENT_T "$t0"
    AG+=("$AGENT_T")
    log "rep $i: agent: commit to $agent_alias answering HTTP $CODE: ${AGENT_T}s"
done
stop_agent
settle
nginx_rss "after $((2 * REPS)) reloads"
NT_MED=$(median "${NT[@]}")
RL_MED=$(median "${RL[@]}")
SC_MED=$(median "${SC[@]}")
SC_OWN_MED=$(median "${SC_OWN[@]}")
FLOOR=$(awk -v a="$NT_MED" -v b="$RL_MED" 'BEGIN { printf "%.3f", a + b }')
TARGET=$(awk -v f="$FLOOR" 'BEGIN { printf "%.3f", 1.2 * f + 0.1 }')
MET=$(awk -v s="$SC_MED" -v t="$TARGET" 'BEGIN { print (s <= t) ? "yes" : "NO" }')
RATIO=$(awk -v s="$SC_MED" -v f="$FLOOR" 'BEGIN { printf "%.2f", s / f }')
AG_MED=$(median "${AG[@]}")
AG_TARGET=$(awk -v f="$FLOOR" 'BEGIN { printf "%.3f", 1.2 * f + 0.2 }')
AG_MET=$(awk -v s="$AG_MED" -v t="$AG_TARGET" 'BEGIN { print (s <= t) ? "yes" : "NO" }')
AG_RATIO=$(awk -v s="$AG_MED" -v f="$FLOOR" 'BEGIN { printf "%.2f", s / f }')

# What the config holds (the hash settings are SuperCP's http-level file).
HASH=$(grep -h '^\s*server_names_hash_' "$P1/etc/nginx/conf.d/supercp.conf" | sed 's/^\s*//' | tr '\n' ' ' | sed 's/ $//')
read -r NAMES LONGEST < <(conf_files "$SITES" | xargs -d '\n' cat | awk '$1 == "server_name" {
        for (i = 2; i <= NF; i++) { n = $i; sub(/;$/, "", n); if (n == "_" || n == "") continue;
            c++; if (length(n) > m) m = length(n) } }
    END { print c + 0, m + 0 }')
PHP_SITES=$(count_matching "$SITES" 'fastcgi_pass ')
WARNINGS=$(sort -u "$WORK/nginx-t.warn" | sed "s|$WORK|\$WORK|g")

stop_nginx
rm -f "$BENCH_SITE"

# --- report: the target ---------------------------------------------------------------------
# Printed before the shapes are measured, so that a failure there cannot lose these figures.
row() { printf '| %-63s | %-9s | %s |\n' "$@"; }
echo
echo "## SuperCP web benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "- checkout $COMMIT; binary $BINARY"
echo "- machine: $(nproc) cpus, $MEM RAM, $CPU; temp dirs on $FS"
echo "- open files: $NOFILE. Per-site nginx logs would need 2 descriptors per site in every"
echo "  nginx process ($((2 * DOMAINS)) here), so the node logs node-wide (\`web.siteLogs: Node\`)."
echo "- load: $LOAD0 at start, $(cut -d' ' -f1-3 /proc/loadavg) after the timed runs (1/5/15 min)"
echo "- repo: $TENANTS tenants, $DOMAINS domains ($PHP_SITES PHP vhosts); $NAMES server names, the longest $LONGEST characters"
echo "- $NGINX_VERSION: \`nginx -c \$PREFIX/etc/nginx/nginx.conf -g 'daemon off;'\` as root on 127.0.0.1:$PORT,"
echo "  on the config \`supercp apply\` rendered under a temp prefix (the sandbox node's shape, \`root:\`"
echo "  an absolute path, \`manageOwnership: false\`, pools as nobody/nogroup). The nginx gate is"
echo "  \`nginx -t -q -c … -e …\` + HUP to the pid file. PHP-FPM is not started and is no part of these"
echo "  figures: its gate only checks, and only when pool files change (not in a one-domain change)."
echo "- server_names hash (conf.d/supercp.conf, rendered): \`$HASH\`"
if [ -n "$WARNINGS" ]; then
    echo "- nginx -t printed:"
    echo
    printf '%s\n' "$WARNINGS" | sed 's/^/      /'
    echo
else
    echo "- nginx -t printed no warnings"
fi
echo "- first apply (not part of the target): ${FIRST_APPLY} s; nginx started and answered after ${NGINX_START} s"
echo
echo "Each figure is the median of $REPS runs; the runs were interleaved (nginx -t, reload, apply)."
echo "A reload is HUP to the master until a request to a hand-changed vhost gets the new answer;"
echo "SuperCP's figure runs from the start of \`supercp apply\` (one alias added to Domain/$EDIT_DOMAIN)"
echo "until a request for that alias gets an answer instead of the 444 default server's closed"
echo "connection. Requests are made with curl every ${POLL} s. A reload includes nginx's own"
echo "100 ms: the master starts the new workers, sleeps 100 ms, then stops the old ones, which"
echo "answer with the old config until then."
echo
row figure median "runs (s)"
row "$(printf -- '-%.0s' {1..63})" "---------" "--------"
row "nginx -t over the whole config" "$NT_MED s" "${NT[*]}"
row "reload: HUP until the changed vhost answers" "$RL_MED s" "${RL[*]}"
row "**floor** = nginx -t + reload" "$FLOOR s" ""
row "**SuperCP**: apply after changing one domain, until it answers" "$SC_MED s" "${SC[*]}"
row "supercp apply's own wall time" "$SC_OWN_MED s" "${SC_OWN[*]}"
row "target: <= 1.2 x floor + 0.1 s" "$TARGET s" "met: **$MET** (SuperCP = ${RATIO} x floor)"
row "**agent**: commit + SIGHUP until the new alias answers" "$AG_MED s" "${AG[*]}"
row "agent target (issue 5): <= 1.2 x floor + 0.2 s" "$AG_TARGET s" "met: **$AG_MET** (agent = ${AG_RATIO} x floor)"
echo
echo "The agent's figure: an alias added to the same domain and committed to the repo (the agent's"
echo "remote, file://), then SIGHUP to the agent, until nginx answers for the alias. It includes the"
echo "fetch, the checkout, an incremental load (only the changed file parsed), the render, observing"
echo "and writing only what changed, nginx -t and the reload. Its first run, a full one, took"
echo "${AGENT_FIRST} s."
echo
echo "nginx memory (KiB from /proc; workers share most of the master's pages, so their RSS overlaps"
echo "with it; PSS of the master counts shared pages once per sharer):"
echo
echo "| when | master RSS | master PSS | master peak (VmHWM) | workers (RSS) |"
echo "| --- | --- | --- | --- | --- |"
printf '%s\n' "${RSS_ROWS[@]}"
echo
echo "\`nginx -t\` peak RSS: $(mib "$(max "${NT_RSS[@]}")")"

# --- 7. the config's shape: the socket path from a variable or literal per vhost ---------------
# Which shape the built-in template renders is read from the rendered files. The other shape is
# rendered by SuperCP into a second prefix with an override of this checkout's
# templates/vhost.conf.tera. That needs a binary built from this checkout (its other built-in
# templates must fit the override); when the override does not render or its check fails, the
# other shape is made from a copy of the first prefix's nginx config with only the PHP
# locations rewritten, and the report says so.
# shellcheck disable=SC2016 # a literal $ of nginx's variable
VAR_PASS='fastcgi_pass unix:$supercp_pool;'
if [ "$(count_matching "$SITES" "$VAR_PASS")" -gt 0 ]; then
    BUILTIN=variable OTHER=literal
else
    BUILTIN=literal OTHER=variable
fi
P2=$WORK/prefix-$OTHER
S2=$WORK/state-$OTHER
SITES2=$P2/etc/nginx/sites-enabled
SOURCE=""     # how the other shape was made
SHAPE_NOTE="" # why the override was not used
mkdir -p "$WORK/templates" "$P2"
if python3 - "$ROOT/templates/vhost.conf.tera" "$WORK/templates/vhost.conf.tera" "$OTHER" \
    2>"$WORK/override.err" <<'PY'; then
import re, sys
src, dst, to = sys.argv[1:4]
text = open(src).read()
var = re.compile(r"^([ \t]*)set \$supercp_pool \{\{ fpm_socket \}\};\n[ \t]*fastcgi_pass unix:\$supercp_pool;\n", re.M)
lit = re.compile(r"^([ \t]*)fastcgi_pass unix:\{\{ fpm_socket \}\};\n", re.M)
if to == "literal":
    text, n = var.subn(lambda m: m.group(1) + "fastcgi_pass unix:{{ fpm_socket }};\n", text)
else:
    text, n = lit.subn(lambda m: m.group(1) + "set $supercp_pool {{ fpm_socket }};\n"
                       + m.group(1) + "fastcgi_pass unix:$supercp_pool;\n", text)
if n != 1:
    sys.exit(f"templates/vhost.conf.tera has no fastcgi_pass of the other shape to turn {to} (found {n})")
open(dst, "w").write(text)
PY
    write_node "$WORK/node-$OTHER.yaml" "$P2" "$WORK/templates"
    log "rendering the $OTHER shape into $P2 (first apply with a vhost template override)"
    now t0
    if "$SUPERCP" --state "$S2" apply --repo "$REPO" --node "$WORK/node-$OTHER.yaml" \
        >"$WORK/$OTHER.out" 2>"$WORK/$OTHER.err"; then
        since SHAPE_APPLY "$t0"
        log "first apply, $OTHER shape: ${SHAPE_APPLY}s: $(summary_of "$OTHER")"
        if [ "$OTHER" = literal ]; then
            n=$(count_matching "$SITES2" 'fastcgi_pass unix:/')
        else
            n=$(count_matching "$SITES2" "$VAR_PASS")
        fi
        if [ "$n" = "$PHP_SITES" ]; then
            SOURCE="template override, \`supercp apply\` ${SHAPE_APPLY} s"
        else
            SHAPE_NOTE="the override rendered $n PHP vhosts of the $OTHER shape, not $PHP_SITES"
        fi
    else
        SHAPE_NOTE="supercp apply with the override failed: $(grep -m1 -o '\[emerg\].*' "$WORK/$OTHER.err" || tail -n 1 "$WORK/$OTHER.err")"
    fi
else
    SHAPE_NOTE=$(tail -n 1 "$WORK/override.err")
fi
if [ -n "$SOURCE" ]; then
    # The renderings must differ only in the fastcgi lines (else the binary's built-in
    # template is not this checkout's and two different configs are compared).
    normalize() { sed "s|$1/|PREFIX/|g" "$2" | grep -v -e '^\s*#' -e 'supercp_pool' -e 'fastcgi_pass'; }
    for f in $(grep -rlF --include='*.conf' 'fastcgi_pass ' "$SITES" | sort | head -n 20); do
        if ! diff -q <(normalize "$P1" "$f") <(normalize "$P2" "$SITES2/${f##*/}") >/dev/null; then
            SOURCE=""
            SHAPE_NOTE="the override's vhosts differ from the built-in ones beyond the PHP location (${f##*/})"
            break
        fi
    done
fi
if [ -z "$SOURCE" ]; then
    log "warning: $SHAPE_NOTE; making the $OTHER shape from a copy of $P1's nginx config instead"
    rm -rf "$P2"
    n=$(python3 - "$P1" "$P2" "$OTHER" <<'PY'
import os, re, sys
src, dst, to = sys.argv[1:4]
var = re.compile(r"^([ \t]*)set \$supercp_pool (/\S+);\n[ \t]*fastcgi_pass unix:\$supercp_pool;\n", re.M)
lit = re.compile(r"^([ \t]*)fastcgi_pass unix:(/\S+);\n", re.M)
n = 0
for d, _, files in os.walk(os.path.join(src, "etc/nginx")):
    out = dst + d[len(src):]
    os.makedirs(out, exist_ok=True)
    for f in files:
        text = open(os.path.join(d, f)).read().replace(src + "/", dst + "/")
        if to == "literal":
            text, k = var.subn(lambda m: f"{m.group(1)}fastcgi_pass unix:{m.group(2)};\n", text)
        else:
            text, k = lit.subn(lambda m: f"{m.group(1)}set $supercp_pool {m.group(2)};\n"
                               f"{m.group(1)}fastcgi_pass unix:$supercp_pool;\n", text)
        n += k
        open(os.path.join(out, f), "w").write(text)
for sub in ("var/log/nginx", "var/lib/nginx", "run"):
    os.makedirs(os.path.join(dst, sub), exist_ok=True)
print(n)
PY
)
    [ "$n" = "$PHP_SITES" ] || die "rewrote $n PHP locations to the $OTHER shape, expected $PHP_SITES"
    SOURCE="copy of the rendered config, PHP locations rewritten (the override was not used: $SHAPE_NOTE)"
fi

declare -A SHAPE_T SHAPE_RSS SHAPE_SRC
SHAPE_T=([variable]="" [literal]="")
SHAPE_RSS=([variable]=0 [literal]=0)
SHAPE_SRC=([$BUILTIN]="built-in template" [$OTHER]="$SOURCE")
for i in $(seq "$SHAPE_REPS"); do
    for shape in "$BUILTIN" "$OTHER"; do
        if [ "$shape" = "$BUILTIN" ]; then p=$P1; else p=$P2; fi
        nginx_t "$p"
        SHAPE_T[$shape]+="$T "
        SHAPE_RSS[$shape]=$(max "${SHAPE_RSS[$shape]}" "$T_RSS")
        log "shape $shape #$i: nginx -t ${T}s, peak RSS $(mib "$T_RSS")"
    done
done
# shellcheck disable=SC2086 # word splitting of the sample lists is meant
VAR_MED=$(median ${SHAPE_T[variable]})
# shellcheck disable=SC2086
LIT_MED=$(median ${SHAPE_T[literal]})
SHAPE_RATIO=$(awk -v l="$LIT_MED" -v v="$VAR_MED" 'BEGIN { printf "%.1f", (v > 0) ? l / v : 0 }')
SHAPE_WARN=$(sort -u "$WORK/nginx-t.warn" | sed "s|$WORK|\$WORK|g")

# --- report: the shapes ----------------------------------------------------------------------
echo
echo "Shapes: \`nginx -t\` over the same $DOMAINS sites ($PHP_SITES with PHP), $SHAPE_REPS runs each, interleaved:"
echo
echo "| shape | PHP location | nginx -t median | runs (s) | peak RSS | made by |"
echo "| --- | --- | --- | --- | --- | --- |"
echo "| variable | \`set \$supercp_pool /…/t.sock; fastcgi_pass unix:\$supercp_pool;\` | $VAR_MED s | ${SHAPE_T[variable]% } | $(mib "${SHAPE_RSS[variable]}") | ${SHAPE_SRC[variable]} |"
echo "| literal | \`fastcgi_pass unix:/…/t.sock;\` | $LIT_MED s | ${SHAPE_T[literal]% } | $(mib "${SHAPE_RSS[literal]}") | ${SHAPE_SRC[literal]} |"
echo
echo "literal / variable: ${SHAPE_RATIO}x"
if [ "$SHAPE_WARN" != "$WARNINGS" ]; then
    echo
    echo "nginx -t printed, over both shapes:"
    echo
    printf '%s\n' "$SHAPE_WARN" | sed 's/^/    /'
fi

[ "$MET" = yes ]
