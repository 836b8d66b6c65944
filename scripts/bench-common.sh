# shellcheck shell=bash
# Sourced by the scripts/bench-*.sh scripts (not run on its own): what they share.
# Needs ROOT (the checkout) and a `log` and a `die` function.

# Sets SUPERCP to the binary to time: the caller's SUPERCP, else a release build of this
# checkout (built now); and BINARY to how the reports name it (path, version, build time).
bench_binary() {
    if [ -z "${SUPERCP:-}" ]; then
        log "building supercp (cargo build --release -p supercp-cli)"
        (cd "$ROOT" && cargo build --release -p supercp-cli) >&2
        SUPERCP=${CARGO_TARGET_DIR:-$ROOT/target}/release/supercp
    fi
    [ -x "$SUPERCP" ] || die "no supercp binary at $SUPERCP"
    BINARY="$SUPERCP ($("$SUPERCP" --version), built $(date -u -r "$SUPERCP" +%Y-%m-%dT%H:%MZ))"
}
