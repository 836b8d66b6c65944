#!/usr/bin/env bash
# Runs SuperCP's whole test suite on a Debian 12 machine, as root: installs the services and tools the
# tests start for real (nginx, PHP-FPM 8.2 and its CLI, PostgreSQL, logrotate, git, ssh-keygen,
# Chromium, sshd and fcgiwrap as Git servers, pebble as an ACME CA, curl, PowerDNS with its SQLite
# backend and dig, BIND 9 as a secondary of that PowerDNS with its zone checkers, ldns's checkers,
# sslyze from PyPI) and the headers git2's https and ssh transports build against,
# then `cargo test --workspace`. Services are
# installed but never started as system services: each test starts its own copy on loopback under a
# temporary prefix. The web tests create Linux users named scw<pid><n><a|b> with uids from 41000 and
# remove them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(nginx php8.2-fpm php8.2-cli postgresql git ca-certificates logrotate openssh-client chromium
          openssh-server fcgiwrap openssl pkg-config libssl-dev libssh2-1-dev pebble curl python3-venv
          pdns-server pdns-backend-sqlite3 sqlite3 bind9-dnsutils bind9 bind9-utils ldnsutils)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "test.sh: missing Debian packages: ${missing[*]}; run as root to install them" >&2
        exit 1
    fi
    # Keep the packages from starting their system services (no systemd here, and the tests
    # start their own instances).
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
    fi
    echo "test.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# sslyze checks the TLS profiles against Mozilla's configurations (tests/tls_profiles.rs). Debian
# has no package for it, so it comes from PyPI, pinned, into a venv of Debian's own python3 (not
# whatever python3 is first on PATH) at the path the test looks at first. Installed once; a venv
# whose sslyze does not start is made again.
sslyze_venv=/opt/supercp-test/sslyze
sslyze_version=6.3.1
if ! "$sslyze_venv/bin/sslyze" --help >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "test.sh: sslyze is missing at $sslyze_venv; run as root to install it" >&2
        exit 1
    fi
    echo "test.sh: installing sslyze $sslyze_version from PyPI into $sslyze_venv" >&2
    rm -rf "$sslyze_venv"
    /usr/bin/python3 -m venv "$sslyze_venv"
    "$sslyze_venv/bin/pip" install -q --disable-pip-version-check "sslyze==$sslyze_version"
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "test.sh: cargo is not installed; install Rust (1.89 or newer) with rustup first" >&2
    exit 1
fi

# Every test target of every crate (the crates have no doc examples to run).
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked --all-targets "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole workspace (cargo prints one summary per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "workspace: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
