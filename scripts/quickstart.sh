#!/usr/bin/env bash
# The main job on the embedded default: builds supercp, then plans and applies
# examples/quickstart into the sandbox (./state/sandbox), and shows the plan, the files and the
# audit journal. No root needed for SuperCP itself; as root on a fresh Debian 12 machine it
# first installs nginx and PHP-FPM so the sandbox's gates run the real `nginx -t`/`php-fpm -t`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ] && ! command -v nginx >/dev/null 2>&1; then
    [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx php8.2-fpm >/dev/null
fi

cargo build --release --locked -p supercp-cli
supercp=target/release/supercp
state=${STATE:-state}
repo=examples/quickstart

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "supercp validate --repo $repo"
$supercp --state "$state" validate --repo "$repo"

step "supercp plan --repo $repo"
set +e
$supercp --state "$state" plan --repo "$repo" --detailed-exitcode
code=$?
set -e
echo "(plan exit code: $code — 0 no changes, 2 changes)"
[ "$code" -eq 1 ] && exit 1

step "supercp apply --repo $repo"
$supercp --state "$state" apply --repo "$repo"

step "files in $state/sandbox"
find "$state/sandbox" -path "$state/sandbox/var" -prune -o -print | sort

step "a rendered vhost: $state/sandbox/etc/nginx/sites-enabled/acme.test.conf"
cat "$state/sandbox/etc/nginx/sites-enabled/acme.test.conf"

step "supercp audit"
$supercp --state "$state" audit
run=$($supercp --state "$state" audit --format json | sed -n 's/^ *"id": \([0-9]*\),$/\1/p' | head -n 1)
step "supercp audit --run $run"
$supercp --state "$state" audit --run "$run" | head -n 20

step "a second plan: nothing to do"
$supercp --state "$state" plan --repo "$repo" --detailed-exitcode
