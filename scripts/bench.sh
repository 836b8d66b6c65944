#!/usr/bin/env bash
# SuperCP benchmark: a repo of 10,000 tenants / 20,000 domains against the sandbox node.
#
# Measures, in one run (medians of several repetitions): validate, a first apply into a fresh
# sandbox state dir, a no-change plan afterwards, the time to read every managed file once (the
# floor a plan is compared with), peak RSS of the no-change plan and of the first apply, and
# checks that a plan after editing one domain lists exactly that domain's objects.
# See docs/performance.md for what the figures mean and the last results.
#
# Usage:   scripts/bench.sh
#   SUPERCP=/path/to/supercp  use this binary (otherwise: cargo build --release -p supercp-cli)
#   TENANTS=10000             tenants to generate (2 domains each)
#   REPS=5 APPLY_REPS=3       repetitions of the timed commands / of the first apply
#   BENCH_TMP=/tmp            where the temp repo and state dirs go (keep it on a real disk:
#                             on tmpfs fsync/syncfs is free and the apply figure means nothing)
# Exit status: 0 when every target is met, 1 when one is missed or a check fails.
# Works as root on Debian 12 (installs the `time` package if /usr/bin/time is missing).
#
# When the first apply with the embedded sandbox node fails (at 20,000 domains `nginx -t` runs
# out of file descriptors: it opens two log files per domain), the failure is reported and the
# rest is measured with the sandbox node set to node-wide nginx logs (`web.siteLogs: Node`; for
# binaries without that field, a vhost template override without the log lines). The report
# says so.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TENANTS=${TENANTS:-10000}
REPS=${REPS:-5}
APPLY_REPS=${APPLY_REPS:-3}
BENCH_TMP=${BENCH_TMP:-${TMPDIR:-/tmp}}

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

# --- tools -----------------------------------------------------------------------------------
if [ ! -x /usr/bin/time ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing the Debian package 'time' (for peak RSS)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null \
            || die "cannot install the 'time' package; install it and run again"
    else
        die "/usr/bin/time is missing: apt-get install time"
    fi
fi
command -v jq >/dev/null || die "jq is missing: apt-get install jq"
command -v python3 >/dev/null || die "python3 is missing: apt-get install python3"

# shellcheck source=scripts/bench-common.sh
. "$ROOT/scripts/bench-common.sh"
bench_binary

WORK=$(mktemp -d "$BENCH_TMP/supercp-bench.XXXXXX")
TIMED_PIDS=() # the command being timed and /usr/bin/time around it, stopped if we are
cleanup() {
    if [ "${#TIMED_PIDS[@]}" -gt 0 ]; then kill "${TIMED_PIDS[@]}" 2>/dev/null || true; fi
    log "removing $WORK"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
exec {NAPFD}<> <(:) # a pipe nobody writes to: `read -t` on it sleeps without forking

# --- helpers ---------------------------------------------------------------------------------
# timed EXPECTED_RC CMD... : runs CMD (stdout/stderr to $WORK/out, $WORK/err) and sets
#   ELAPSED  wall seconds (from GNU time, 10 ms resolution)
#   TREE_RSS peak RSS in KiB of the largest process of the run (supercp or a gate check it ran)
#   OWN_RSS  peak RSS in KiB of CMD itself (VmHWM, read every 20 ms while it runs)
# Dies when CMD exits with another code than EXPECTED_RC, or sets RC when EXPECTED_RC is "any".
timed() {
    local expected=$1 pid child="" hwm=0 k v rest
    shift
    /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" &
    pid=$!
    TIMED_PIDS=("$pid")
    while kill -0 "$pid" 2>/dev/null; do
        if [ -z "$child" ]; then
            read -r child rest <"/proc/$pid/task/$pid/children" 2>/dev/null || true
            if [ -n "$child" ]; then TIMED_PIDS=("$child" "$pid"); fi
        fi
        if [ -n "$child" ]; then
            while read -r k v rest; do
                if [ "$k" = VmHWM: ] && [ "$v" -gt "$hwm" ]; then hwm=$v; fi
            done <"/proc/$child/status" 2>/dev/null || true
        fi
        read -r -t 0.02 -u "$NAPFD" || true
    done
    RC=0
    wait "$pid" || RC=$?
    TIMED_PIDS=()
    if [ "$expected" != any ] && [ "$RC" != "$expected" ]; then
        printf 'bench: command: %s\n' "$*" >&2
        tail -n 20 "$WORK/err" >&2
        die "exit code $RC, expected $expected"
    fi
    read -r ELAPSED TREE_RSS < <(tail -n 1 "$WORK/time")
    OWN_RSS=$hwm
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
    END { if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
max() { printf '%s\n' "$@" | sort -g | tail -n 1; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f MiB", k / 1024 }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

REPO=$WORK/repo
NODE_ARGS=() # empty: the embedded sandbox node
sc() { # STATE_DIR COMMAND ARGS... -> the supercp command line (as an array in CMD)
    local state=$1 command=$2
    shift 2
    CMD=("$SUPERCP" --state "$state" "$command" --repo "$REPO" ${NODE_ARGS[@]+"${NODE_ARGS[@]}"} "$@")
}

# --- machine ---------------------------------------------------------------------------------
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
FS=$(df -PT "$WORK" | awk 'NR == 2 { print $2 " (" $1 ")" }')
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- crates Cargo.toml Cargo.lock templates 2>/dev/null || echo ' + uncommitted changes')"
log "machine: $(nproc) cpus, $MEM, $CPU; temp dirs on $FS; open-file limit $(ulimit -n)"
log "binary: $BINARY"

# --- 1. the repo -----------------------------------------------------------------------------
python3 "$ROOT/scripts/gen-repo.py" "$REPO" --tenants "$TENANTS"
DOMAINS=$(grep -rh '^kind: Domain' "$REPO" | wc -l)
FILES=$(find "$REPO" -name '*.yaml' | wc -l)
log "repo: $TENANTS tenants, $DOMAINS domains in $FILES files ($(du -sh --apparent-size "$REPO" | cut -f1))"

# --- 2. validate -----------------------------------------------------------------------------
V=()
for i in $(seq "$REPS"); do
    sc "$WORK/state-v" validate
    timed 0 "${CMD[@]}"
    V+=("$ELAPSED")
    log "validate #$i: ${ELAPSED}s"
done
VALIDATE=$(median "${V[@]}")

# --- 3. first apply, each into a fresh state dir -----------------------------------------------
# State dirs are kept until the end: on ext4 without a journal (this machine's disk), inodes
# freed in the last ~30 s make new inode allocation slow, so deleting 130,000 files right
# before an apply would slow that apply down.
DEFAULT_APPLY="" # set when the first apply with the embedded node fails
A=()
A_OWN=()
A_TREE=()
i=0
while [ "${#A[@]}" -lt "$APPLY_REPS" ]; do
    i=$((i + 1))
    STATE=$WORK/state-$i
    sync # no dirty pages left over from what ran before
    sc "$STATE" apply
    timed any "${CMD[@]}"
    if [ "$RC" != 0 ]; then
        [ "${#NODE_ARGS[@]}" = 0 ] && [ "${#A[@]}" = 0 ] || die "first apply failed: $(tail -n 5 "$WORK/err")"
        REASON=$(grep -m1 -o 'nginx: \[emerg\] .*' "$WORK/err" || head -n 1 "$WORK/err")
        DEFAULT_APPLY="FAILED after ${ELAPSED}s: $REASON"
        log "first apply with the embedded sandbox node: exit $RC after ${ELAPSED}s:"
        sed 's/^/bench:   /' "$WORK/err" | head -n 6 >&2
        # The rest is measured with node-wide nginx logs: `web.siteLogs: Node` where the binary
        # knows it, else a vhost template override without the per-domain log lines.
        sed 's|^  web:$|&\n    siteLogs: Node|' "$ROOT/examples/nodes/sandbox.yaml" >"$WORK/node.yaml"
        WORKAROUND="the sandbox node with web.siteLogs: Node (node-wide nginx logs)"
        if ! "$SUPERCP" --state "$WORK/state-v" validate --repo "$ROOT/examples/quickstart" \
            --node "$WORK/node.yaml" >/dev/null 2>&1; then
            mkdir -p "$WORK/templates"
            grep -v '^\s*\(access_log\|error_log\) {{ logs_dir }}' "$ROOT/templates/vhost.conf.tera" \
                >"$WORK/templates/vhost.conf.tera"
            sed "s|^  root: \"{state}/sandbox\"\$|&\n  templateDir: $WORK/templates|" \
                "$ROOT/examples/nodes/sandbox.yaml" >"$WORK/node.yaml"
            grep -q templateDir "$WORK/node.yaml" || die "cannot derive a node file from examples/nodes/sandbox.yaml"
            WORKAROUND="the sandbox node + a vhost template override without per-domain access_log/error_log"
        fi
        log "measuring the rest with $WORKAROUND"
        NODE_ARGS=(--node "$WORK/node.yaml")
        sync
        log "waiting 30 s for the files the failed apply removed to age (see above)"
        sleep 30
        continue
    fi
    A+=("$ELAPSED")
    A_OWN+=("$OWN_RSS")
    A_TREE+=("$TREE_RSS")
    log "first apply #${#A[@]}: ${ELAPSED}s, peak RSS supercp $(mib "$OWN_RSS"), largest process $(mib "$TREE_RSS")"
done
APPLY=$(median "${A[@]}")
APPLY_RSS=$(max "${A_OWN[@]}")
APPLY_TREE_RSS=$(max "${A_TREE[@]}")
MANAGED=$(find "$STATE/sandbox" -type f | wc -l)
MANAGED_ALL=$(find "$STATE/sandbox" | wc -l)
MANAGED_BYTES=$(du -sb --apparent-size "$STATE/sandbox" | cut -f1)
log "sandbox: $MANAGED files ($((MANAGED_BYTES / 1048576)) MiB), $MANAGED_ALL entries with directories"

# --- 3b. the floor of a first apply's file work: the same directories and config files made
# with plain mkdir and write-to-temp + rename, then one sync (Python, one thread). On this
# machine's disk that cost varies with how recently files were deleted (see docs), so it is
# measured here, under the same conditions as the applies.
FLOOR=$(python3 - "$STATE/sandbox" "$WORK/floor" <<'EOF'
import os, sys, time
src, dst = sys.argv[1], sys.argv[2]
dirs, files = [], []
for d, ds, fs in os.walk(src):
    rel = os.path.relpath(d, src)
    dirs.append(rel)
    if rel.split(os.sep)[0] == "etc":  # the configs; logs and pid files come from the gates
        files += [(os.path.join(rel, f), open(os.path.join(d, f), "rb").read()) for f in fs]
t = time.monotonic()
for rel in dirs:
    os.makedirs(os.path.join(dst, rel), exist_ok=True)
for rel, data in files:
    path = os.path.join(dst, rel)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.rename(path + ".tmp", path)
os.sync()
print(f"{time.monotonic() - t:.2f} {len(dirs)} {len(files)}")
EOF
)
read -r FLOOR FLOOR_DIRS FLOOR_FILES <<<"$FLOOR"
log "floor: $FLOOR_DIRS directories and $FLOOR_FILES files made with mkdir/write/rename + sync in ${FLOOR}s"

# --- 4+5. no-change plan (exit 0 with --detailed-exitcode) and the floor: read every managed
# file once. Interleaved (plan, read, plan, read, ...) after one warm-up of each, so both see the
# same warm cache and the same machine: this VM's speed drifts by a third from minute to minute.
sc "$STATE" plan --detailed-exitcode
PLAN_CMD=("${CMD[@]}")
READALL=(bash -c 'find "$1" -type f -print0 | xargs -0 cat >/dev/null' readall "$STATE/sandbox")
timed 0 "${PLAN_CMD[@]}"
timed 0 "${READALL[@]}"
P=()
P_RSS=()
C=()
for i in $(seq "$REPS"); do
    timed 0 "${PLAN_CMD[@]}"
    P+=("$ELAPSED")
    P_RSS+=("$OWN_RSS")
    timed 0 "${READALL[@]}"
    C+=("$ELAPSED")
    log "no-change plan #$i: ${P[-1]}s (exit 0), peak RSS $(mib "${P_RSS[-1]}"); read everything: ${ELAPSED}s"
done
PLAN=$(median "${P[@]}")
PLAN_RSS=$(max "${P_RSS[@]}")
CAT=$(median "${C[@]}")

# --- 6. a no-change apply (no target; it must write nothing) -----------------------------------
N=()
for i in $(seq "$APPLY_REPS"); do
    sc "$STATE" apply
    timed 0 "${CMD[@]}"
    N+=("$ELAPSED")
    log "no-change apply #$i: ${ELAPSED}s: $(tail -n 1 "$WORK/err")"
done
NOOP_APPLY=$(median "${N[@]}")

# --- 7. edit one domain: the plan lists exactly that domain's objects --------------------------
# Two edits, each undone afterwards: (inline) an alias added to the domain's existing `aliases:`
# line, so no line of the file moves; (newline) an `aliases:` line added to a domain that has
# none and is followed by another domain in the same file, whose lines move down by one.
edit_domain() { # MODE (inline|newline) -> prints "FILE DOMAIN"; edits FILE, keeps FILE.orig
    python3 - "$REPO" "$1" <<'EOF'
import os, sys
repo, mode = sys.argv[1], sys.argv[2]
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(repo, "customers")) for f in fs)
for path in files[len(files) // 2:]:
    docs = open(path).read().split("\n---\n")
    for i, doc in enumerate(docs):
        lines = doc.split("\n")
        if "kind: Domain" not in lines:
            continue
        domain = next(l for l in lines if l.startswith("metadata:")).split("name: ")[1].rstrip("}")
        alias = f"extra.{domain}"
        has = [j for j, l in enumerate(lines) if l.startswith("  aliases: [")]
        if mode == "inline" and has:
            lines[has[0]] = lines[has[0]].replace("[", f"[{alias}, ", 1)
        elif mode == "newline" and not has and i + 1 < len(docs):
            lines.insert(lines.index("spec:") + 2, f"  aliases: [{alias}]")
        else:
            continue
        docs[i] = "\n".join(lines)
        os.rename(path, path + ".orig")
        open(path, "w").write("\n---\n".join(docs))
        print(path, domain)
        sys.exit(0)
sys.exit("no domain fits the edit " + mode)
EOF
}
EDIT_RESULTS=()
EDIT_OK=yes
for mode in inline newline; do
    read -r EDIT_FILE EDIT_DOMAIN < <(edit_domain "$mode")
    [ -n "${EDIT_DOMAIN:-}" ] || die "could not edit a domain ($mode)"
    sc "$STATE" plan --format json --detailed-exitcode
    timed 2 "${CMD[@]}"
    mv "$EDIT_FILE.orig" "$EDIT_FILE"
    steps=$(jq '.steps | length' "$WORK/out")
    others=$(jq -r --arg r "Domain/$EDIT_DOMAIN" '[.steps[].resource | select(. != $r)] | unique | join(", ")' "$WORK/out")
    if [ "$steps" -gt 0 ] && [ -z "$others" ]; then ok=yes; else ok=NO; EDIT_OK=no; fi
    EDIT_RESULTS+=("($mode) $ok: Domain/$EDIT_DOMAIN; $steps step(s)${others:+; also: $others}; plan ${ELAPSED}s")
    log "edit ($mode) of $EDIT_DOMAIN: $(jq -c '[.steps[] | {action, object, resource, reason}]' "$WORK/out")"
done
sc "$STATE" plan --detailed-exitcode
timed 0 "${CMD[@]}" # the edits are undone: no changes again

# --- report ----------------------------------------------------------------------------------
RATIO=$(awk -v p="$PLAN" -v c="$CAT" 'BEGIN { printf "%.1f", p / c }')
met() { if "$@"; then echo yes; else echo NO; fi; }
M_PLAN=$(met le "$PLAN" 1.5)
M_RATIO=$(met le "$RATIO" 3)
M_PRSS=$(met le "$PLAN_RSS" 1048576)
M_ARSS=$(met le "$APPLY_RSS" 1048576)
M_APPLY=$(met le "$APPLY" 10)
M_EDIT=$([ "$EDIT_OK" = yes ] && echo yes || echo NO)
if [ -n "$DEFAULT_APPLY" ]; then M_DEFAULT=NO; WA=" *"; else M_DEFAULT=; WA=""; fi

echo
echo "SuperCP benchmark $(date -u +%Y-%m-%dT%H:%MZ); checkout $COMMIT; binary $BINARY"
echo "machine: $(nproc) cpus, $MEM RAM, $CPU; temp dirs on $FS; open-file limit $(ulimit -n)"
echo "load:    $LOAD0 at start, $(cut -d' ' -f1-3 /proc/loadavg) at end (1/5/15 min; other work on the machine skews the figures)"
echo "repo:    $TENANTS tenants, $DOMAINS domains, $FILES files; sandbox after apply: $MANAGED files, $MANAGED_ALL entries"
echo
row() { printf '| %-46s | %-10s | %-16s | %-4s |\n' "$@"; }
row figure median target met
row "$(printf -- '-%.0s' {1..46})" "----------" "----------------" "----"
row "validate ($REPS runs)" "${VALIDATE} s" "-" ""
if [ -n "$DEFAULT_APPLY" ]; then
    row "first apply, embedded sandbox node" "failed" "<= 10 s" "$M_DEFAULT"
fi
row "first apply, fresh sandbox$WA ($APPLY_REPS runs)" "${APPLY} s" "<= 10 s" "$M_APPLY"
row "no-change plan$WA ($REPS runs, exit 0)" "${PLAN} s" "<= 1.5 s" "$M_PLAN"
row "read every managed file once ($REPS runs)" "${CAT} s" "-" ""
row "no-change plan / read everything" "${RATIO}x" "<= 3x" "$M_RATIO"
row "first-apply floor: mkdir/write same tree" "${FLOOR} s" "-" ""
row "peak RSS, no-change plan" "$(mib "$PLAN_RSS")" "<= 1 GiB" "$M_PRSS"
row "peak RSS, first apply (supercp)" "$(mib "$APPLY_RSS")" "<= 1 GiB" "$M_ARSS"
row "peak RSS, first apply (largest process)" "$(mib "$APPLY_TREE_RSS")" "-" ""
row "no-change apply$WA ($APPLY_REPS runs)" "${NOOP_APPLY} s" "-" ""
row "plan after editing one domain (2 edits)" "" "that domain only" "$M_EDIT"
echo
if [ -n "$DEFAULT_APPLY" ]; then
    echo "first apply with the embedded sandbox node: $DEFAULT_APPLY"
    echo "* measured with $WORKAROUND"
fi
echo "runs (s): validate ${V[*]} | first apply ${A[*]} | plan ${P[*]} | read ${C[*]} | no-change apply ${N[*]}"
echo "edit checks:"
printf '  %s\n' "${EDIT_RESULTS[@]}"

case "$M_DEFAULT$M_PLAN$M_RATIO$M_PRSS$M_ARSS$M_APPLY$M_EDIT" in
    *NO*) exit 1 ;;
    *) exit 0 ;;
esac
