# shellcheck shell=bash
# Sourced by the scripts/bench-*.sh scripts (not run on its own): what they share.
# Needs ROOT (the checkout) and a `log` and a `die` function.

# Sets SUPERCP to the binary to time: the caller's SUPERCP, else a release build of this
# checkout (built now).
bench_binary() {
    if [ -z "${SUPERCP:-}" ]; then
        log "building supercp (cargo build --release -p supercp-cli)"
        (cd "$ROOT" && cargo build --release -p supercp-cli) >&2
        SUPERCP=${CARGO_TARGET_DIR:-$ROOT/target}/release/supercp
    fi
    [ -x "$SUPERCP" ] || die "no supercp binary at $SUPERCP"
}
