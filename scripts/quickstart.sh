#!/usr/bin/env bash
# The main job. Builds supercp, then validates, plans and applies examples/quickstart.
#
#   bash scripts/quickstart.sh
#       into the sandbox (./state/sandbox; no root needed for SuperCP itself): shows the plan,
#       the files and the audit journal. As root on a fresh Debian 12 machine it first installs
#       nginx and PHP-FPM so the sandbox's gates run the real `nginx -t`/`php-fpm -t`.
#   NODE=examples/nodes/debian.yaml bash scripts/quickstart.sh
#       onto this machine, as root (a fresh Debian 12 with nginx and php8.2-fpm, or it installs
#       them): creates the tenants' users and homes, the vhosts and pools, removes Debian's own
#       default site (it claims default_server on port 80 too), starts nginx and PHP-FPM if they
#       are not running, publishes a page per site and fetches each one on port 80.
set -euo pipefail
cd "$(dirname "$0")/.."

node=${NODE:-}
if [ -n "$node" ] && [ "$(id -u)" -ne 0 ]; then
    echo "quickstart: NODE=$node manages users and /etc: run it as root" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ] && { ! command -v nginx >/dev/null 2>&1 || ! command -v php-fpm8.2 >/dev/null 2>&1; }; then
    [ -n "$node" ] || [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx php8.2-fpm curl >/dev/null
fi

cargo build --release --locked -p supercp-cli
supercp=target/release/supercp
repo=examples/quickstart

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ -z "$node" ]; then
    state=${STATE:-state}
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
    exit 0
fi

# --- a real node -------------------------------------------------------------------------------
state=${STATE:-/var/lib/supercp}
args=(--repo "$repo" --node "$node")

if [ -e /etc/nginx/sites-enabled/default ]; then
    step "removing Debian's /etc/nginx/sites-enabled/default (SuperCP's 00-default.conf answers unknown hosts)"
    rm /etc/nginx/sites-enabled/default
fi

step "supercp validate"
$supercp --state "$state" validate "${args[@]}"
step "supercp plan"
$supercp --state "$state" plan "${args[@]}"
step "supercp apply"
$supercp --state "$state" apply "${args[@]}"

# Services started after the apply read its files; running ones were reloaded by it.
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if [ -d /run/systemd/system ]; then
    step "starting nginx and php8.2-fpm (systemd)"
    systemctl start nginx php8.2-fpm
else
    running /run/nginx.pid || { step "starting nginx"; nginx; }
    running /run/php/php8.2-fpm.pid || { step "starting php-fpm8.2"; mkdir -p /run/php; php-fpm8.2; }
fi

step "publishing a page per site (as its tenant)"
publish() { # tenant domain file content
    local docroot="/home/$1/domains/$2/public_html"
    printf '%s\n' "$4" > "$docroot/$3"
    chown "$1:$1" "$docroot/$3"
    echo "$docroot/$3"
}
publish acme acme.test index.html "Hello from acme.test"
publish acme acme.test whoami.php "<?php echo 'PHP runs as ', posix_getpwuid(posix_geteuid())['name'], PHP_EOL;"
publish globex globex.test index.html "Hello from globex.test"
publish globex static.globex.test index.html "Hello from static.globex.test"

step "fetching each site on port 80"
for url in acme.test/ www.acme.test/ acme.test/whoami.php globex.test/ static.globex.test/; do
    host=${url%%/*}
    path=/${url#*/}
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        body=$(curl -fsS -H "Host: $host" "http://127.0.0.1$path" 2>/dev/null) && break
        sleep 0.5
    done
    printf '%-28s %s\n' "http://$host$path" "${body:-(no answer)}"
    [ -n "${body:-}" ] || exit 1
done
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: acme.test' http://127.0.0.1/old?x=1)
printf '%-28s %s\n' "http://acme.test/old?x=1" "$code $(curl -s -o /dev/null -w '%{redirect_url}' -H 'Host: acme.test' http://127.0.0.1/old?x=1)"

step "supercp status"
$supercp --state "$state" status "${args[@]}"

step "a second apply: nothing to do"
$supercp --state "$state" apply "${args[@]}"
