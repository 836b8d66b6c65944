#!/usr/bin/env bash
# The main job. Builds supercp, then validates, plans and applies examples/quickstart.
#
#   bash scripts/quickstart.sh
#       into the sandbox (./state/sandbox; no root needed for SuperCP itself): shows the plan,
#       the files and the audit journal. As root on a fresh Debian 12 machine it first installs
#       nginx and PHP-FPM so the sandbox's gates run the real `nginx -t`/`php-fpm -t`.
#       As root it also starts a real PowerDNS (gsqlite3, under the state dir, loopback ports
#       15353 and 18081), gives the sandbox node the `dns` role and converges the quickstart's
#       zone into it, then asks it with dig; without root it says it skipped that.
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

# Starts PowerDNS under $state/pdns on loopback, gives the sandbox node the dns role and converges
# the quickstart's zone into it (as root: it installs what is missing).
dns_zone() {
    local dir="$state/pdns" dns_port=15353 api_port=18081
    if ! command -v pdns_server >/dev/null 2>&1 || ! command -v dig >/dev/null 2>&1; then
        step "installing PowerDNS (gsqlite3) and dig"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            pdns-server pdns-backend-sqlite3 sqlite3 bind9-dnsutils >/dev/null
        # Debian starts its own pdns on port 53; the quickstart's runs beside it, not instead.
    fi
    if curl -s -o /dev/null "http://127.0.0.1:$api_port/" 2>/dev/null; then
        echo "quickstart: something already listens on 127.0.0.1:$api_port (an earlier PowerDNS?); stop it first" >&2
        exit 1
    fi
    step "starting PowerDNS on 127.0.0.1:$dns_port (API 127.0.0.1:$api_port) under $dir"
    mkdir -p "$dir/run"
    dir=$(cd "$dir" && pwd)
    [ -f "$dir/pdns.sqlite3" ] || sqlite3 "$dir/pdns.sqlite3" < /usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql
    [ -s "$dir/api.key" ] || (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/api.key")
    chmod 600 "$dir/api.key"
    cat > "$dir/pdns.conf" <<CONF
launch=gsqlite3
gsqlite3-database=$dir/pdns.sqlite3
gsqlite3-dnssec=yes
local-address=127.0.0.1
local-port=$dns_port
socket-dir=$dir/run
api=yes
api-key=$(cat "$dir/api.key")
webserver=yes
webserver-address=127.0.0.1
webserver-port=$api_port
webserver-allow-from=127.0.0.0/8
daemon=no
guardian=no
disable-syslog=yes
security-poll-suffix=
CONF
    chmod 600 "$dir/pdns.conf"
    pdns_server --config-dir="$dir" > "$dir/pdns.log" 2>&1 &
    pdns_pid=$!
    trap 'kill "${pdns_pid:-}" 2>/dev/null || true' EXIT
    for _ in $(seq 50); do
        curl -fsS -o /dev/null -H "X-API-Key: $(cat "$dir/api.key")" "http://127.0.0.1:$api_port/api/v1/servers/localhost" 2>/dev/null && break
        sleep 0.2
    done
    local node="$state/quickstart-dns-node.yaml"
    while IFS= read -r line; do
        case "$line" in
            "  roles: [web]") echo "  roles: [web, dns]" ;;
            "spec:")
                printf 'spec:\n  addresses: [127.0.0.1]\n  dns:\n'
                printf '    apiUrl: http://127.0.0.1:%s\n    apiKeyFile: %s\n' "$api_port" "$dir/api.key"
                printf '    nameservers: [ns1.acme.test.]\n' ;;
            *) printf '%s\n' "$line" ;;
        esac
    done < examples/nodes/sandbox.yaml > "$node"
    step "supercp plan --node $node (the sandbox node with the dns role)"
    $supercp --state "$state" plan --repo "$repo" --node "$node"
    step "supercp apply --node $node"
    $supercp --state "$state" apply --repo "$repo" --node "$node"
    step "dig @127.0.0.1 -p $dns_port acme.test (A, TXT, SRV)"
    dig @127.0.0.1 -p "$dns_port" +noall +answer acme.test A acme.test TXT _sip._tcp.acme.test SRV
    step "stopping PowerDNS (its data stays in $dir; run the script again to serve it)"
}

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

    if [ "$(id -u)" -ne 0 ]; then
        step "DNS: skipped (not root)"
        echo "quickstart: skipped starting PowerDNS and serving examples/quickstart/zones.yaml: run as root for that"
        exit 0
    fi
    dns_zone
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
