#!/usr/bin/env bash
# SuperCP benchmark: a repo of 10,000 tenants / 20,000 domains against the sandbox node.
#
# Measures, in one run (medians of several repetitions): validate, a first apply into a fresh
# sandbox state dir, a no-change plan afterwards, the time to read every managed file once (the
# floor a plan is compared with), peak RSS of the no-change plan and of the first apply, and
# checks that a plan after editing one domain lists exactly that domain's objects.
#
# Usage:   scripts/bench.sh
#   SUPERCP=/path/to/supercp  use this binary (otherwise: cargo build --release -p supercp-cli)
#   TENANTS=10000             tenants to generate (2 domains each)
#   REPS=5 APPLY_REPS=3       repetitions of the timed commands / of the first apply
#   BENCH_TMP=/tmp            where the temp repo and state dirs go (keep it on a real disk:
#                             on tmpfs fsync/syncfs is free and the apply figure means nothing)
# Exit status: 0 when every target is met, 1 when one is missed or a check fails.
# Works as root on Debian 12 (installs the `time` package if /usr/bin/time is missing).

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

if [ -z "${SUPERCP:-}" ]; then
    log "building supercp (cargo build --release -p supercp-cli)"
    (cd "$ROOT" && cargo build --release -p supercp-cli) >&2
    SUPERCP=${CARGO_TARGET_DIR:-$ROOT/target}/release/supercp
fi
[ -x "$SUPERCP" ] || die "no supercp binary at $SUPERCP"

WORK=$(mktemp -d "$BENCH_TMP/supercp-bench.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers ---------------------------------------------------------------------------------
# timed EXPECTED_RC CMD... : runs CMD with stdout/stderr to $WORK/out, $WORK/err; sets
# ELAPSED (seconds, ms resolution) and RSS (KiB, peak of the process); dies on another exit code.
timed() {
    local expected=$1 rc t0 t1
    shift
    t0=$(date +%s%N)
    rc=0
    /usr/bin/time -f '%M' -o "$WORK/rss" "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
    t1=$(date +%s%N)
    if [ "$rc" != "$expected" ]; then
        printf 'bench: command: %s\n' "$*" >&2
        tail -n 20 "$WORK/err" >&2
        die "exit code $rc, expected $expected"
    fi
    ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    RSS=$(tail -n 1 "$WORK/rss")
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
    END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
max() { printf '%s\n' "$@" | sort -g | tail -n 1; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f MiB", k / 1024 }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

REPO=$WORK/repo
STATE=$WORK/state
sc() { "$SUPERCP" --state "$STATE" "$@"; }

# --- machine ---------------------------------------------------------------------------------
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
FS=$(df -PT "$WORK" | awk 'NR == 2 { print $2 " (" $1 ")" }')
log "machine: $(nproc) cpus, $MEM, $CPU; temp dirs on $FS"
log "binary: $SUPERCP ($("$SUPERCP" --version))"

# --- 1. the repo -----------------------------------------------------------------------------
python3 "$ROOT/scripts/gen-repo.py" "$REPO" --tenants "$TENANTS"
DOMAINS=$(grep -rh '^kind: Domain' "$REPO" | wc -l)
FILES=$(find "$REPO" -name '*.yaml' | wc -l)
log "repo: $TENANTS tenants, $DOMAINS domains in $FILES files ($(du -sh "$REPO" | cut -f1))"

# --- 2. validate -----------------------------------------------------------------------------
V=()
for i in $(seq "$REPS"); do
    timed 0 sc validate --repo "$REPO"
    V+=("$ELAPSED")
    log "validate #$i: ${ELAPSED}s"
done
VALIDATE=$(median "${V[@]}")

# --- 3. first apply, each into a fresh state dir -----------------------------------------------
A=()
ARSS=()
for i in $(seq "$APPLY_REPS"); do
    rm -rf "$STATE"
    sync # start every apply with no dirty pages left over from the previous one
    timed 0 sc apply --repo "$REPO"
    A+=("$ELAPSED")
    ARSS+=("$RSS")
    log "first apply #$i: ${ELAPSED}s, peak RSS $(mib "$RSS")"
done
APPLY=$(median "${A[@]}")
APPLY_RSS=$(max "${ARSS[@]}")
MANAGED=$(find "$STATE/sandbox" -type f | wc -l)
MANAGED_BYTES=$(du -sb "$STATE/sandbox" | cut -f1)
log "sandbox: $MANAGED files, $((MANAGED_BYTES / 1024)) KiB"

# --- 4. no-change plan (exit 0 with --detailed-exitcode) ----------------------------------------
timed 0 sc plan --repo "$REPO" --detailed-exitcode # warm-up: same warm cache as the floor
P=()
PRSS=()
for i in $(seq "$REPS"); do
    timed 0 sc plan --repo "$REPO" --detailed-exitcode
    P+=("$ELAPSED")
    PRSS+=("$RSS")
    log "no-change plan #$i: ${ELAPSED}s, peak RSS $(mib "$RSS")"
done
PLAN=$(median "${P[@]}")
PLAN_RSS=$(max "${PRSS[@]}")

# --- 5. the floor: read every managed file once (warm cache) -----------------------------------
readall() { find "$STATE/sandbox" -type f -print0 | xargs -0 cat >/dev/null; }
timed 0 bash -c "$(declare -f readall); STATE='$STATE' readall"
C=()
for i in $(seq "$REPS"); do
    timed 0 bash -c "$(declare -f readall); STATE='$STATE' readall"
    C+=("$ELAPSED")
    log "read everything #$i: ${ELAPSED}s"
done
CAT=$(median "${C[@]}")

# --- 6. a no-change apply (no target; it must write nothing) -----------------------------------
N=()
for i in $(seq "$APPLY_REPS"); do
    timed 0 sc apply --repo "$REPO"
    N+=("$ELAPSED")
    log "no-change apply #$i: ${ELAPSED}s"
done
NOOP_APPLY=$(median "${N[@]}")

# --- 7. edit one domain: the plan lists exactly that domain's objects --------------------------
EDIT_FILE=$(find "$REPO/customers" -name '*.yaml' | sort | sed -n "$(((FILES + 1) / 2))p")
EDIT_DOMAIN=$(awk '/^kind: Domain/ { d = 1; next } d && /^metadata:/ { sub(/.*name: /, ""); sub(/}.*/, ""); print; exit }' "$EDIT_FILE")
python3 - "$EDIT_FILE" "$EDIT_DOMAIN" <<'EOF'
import sys
path, domain = sys.argv[1], sys.argv[2]
lines = open(path).read().split("\n")
start = lines.index(f"metadata: {{name: {domain}}}")
end = next((i for i in range(start, len(lines)) if lines[i] == "---"), len(lines))
alias = f"extra.{domain}"
for i in range(start, end):
    if lines[i].startswith("  aliases: ["):
        lines[i] = lines[i].replace("[", f"[{alias}, ", 1)
        break
else:
    lines.insert(start + 3, f"  aliases: [{alias}]")  # after metadata, spec, tenant
open(path, "w").write("\n".join(lines))
EOF
timed 2 sc plan --repo "$REPO" --format json --detailed-exitcode
EDIT_PLAN=$ELAPSED
EDIT_STEPS=$(jq '.steps | length' "$WORK/out")
EDIT_OTHERS=$(jq -r --arg r "Domain/$EDIT_DOMAIN" '[.steps[].resource | select(. != $r)] | unique | join(", ")' "$WORK/out")
if [ "$EDIT_STEPS" -gt 0 ] && [ -z "$EDIT_OTHERS" ]; then EDIT_OK=yes; else EDIT_OK=no; fi
log "edit of $EDIT_DOMAIN (alias added): plan ${EDIT_PLAN}s, $EDIT_STEPS step(s): $(jq -c '[.steps[] | {action, object, resource}]' "$WORK/out")"

# --- report ----------------------------------------------------------------------------------
RATIO=$(awk -v p="$PLAN" -v c="$CAT" 'BEGIN { printf "%.1f", p / c }')
met() { if "$@"; then echo yes; else echo NO; fi; }
M_PLAN=$(met le "$PLAN" 1.5)
M_RATIO=$(met le "$RATIO" 3)
M_PRSS=$(met le "$PLAN_RSS" 1048576)
M_ARSS=$(met le "$APPLY_RSS" 1048576)
M_APPLY=$(met le "$APPLY" 10)

echo
echo "SuperCP benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (dirty tree)')"
echo "machine: $(nproc) cpus, $MEM RAM, $CPU; temp dirs on $FS"
echo "repo:    $TENANTS tenants, $DOMAINS domains, $FILES files; sandbox after apply: $MANAGED files"
echo
printf '| %-44s | %-14s | %-20s | %-4s |\n' figure "median" target met
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..16})" "$(printf -- '-%.0s' {1..22})" "------"
row() { printf '| %-44s | %-14s | %-20s | %-4s |\n' "$@"; }
row "validate ($REPS runs)" "${VALIDATE} s" "—" ""
row "first apply, fresh sandbox ($APPLY_REPS runs)" "${APPLY} s" "≤ 10 s" "$M_APPLY"
row "no-change plan ($REPS runs, exit 0)" "${PLAN} s" "≤ 1.5 s" "$M_PLAN"
row "read every managed file once ($REPS runs)" "${CAT} s" "—" ""
row "no-change plan / read everything" "${RATIO}×" "≤ 3×" "$M_RATIO"
row "peak RSS, no-change plan" "$(mib "$PLAN_RSS")" "≤ 1 GiB" "$M_PRSS"
row "peak RSS, first apply" "$(mib "$APPLY_RSS")" "≤ 1 GiB" "$M_ARSS"
row "no-change apply ($APPLY_REPS runs)" "${NOOP_APPLY} s" "—" ""
row "plan after editing one domain" "${EDIT_PLAN} s" "only that domain" "$([ "$EDIT_OK" = yes ] && echo yes || echo NO)"
echo
echo "runs (s): validate ${V[*]} | first apply ${A[*]} | plan ${P[*]} | read ${C[*]} | no-change apply ${N[*]}"
echo "edit check: Domain/$EDIT_DOMAIN got an alias; plan has $EDIT_STEPS step(s)${EDIT_OTHERS:+; other resources: $EDIT_OTHERS}"

case "$M_PLAN$M_RATIO$M_PRSS$M_ARSS$M_APPLY$EDIT_OK" in
    *NO* | *no*) exit 1 ;;
    *) exit 0 ;;
esac
