#!/usr/bin/env bash
# Create a small network of founding cities, each in its own data folder, exactly as real founders
# do it (docs/operating.md, "Joining a network"), only all on one machine:
#
#   1. solidarity init            each city: key, config, database, entry 0 (its profile)
#   2. solidarity network create  the network file naming the founders and their verifier keys
#   3. solidarity network sign    each founder signs it in turn
#   4. solidarity network join    each node checks and installs the signed file
#   5. solidarity verify          each node audits its store
#
# compose.yaml runs it once before the three 'serve' services start; tests/test_deploy.py runs it
# on the host against temporary folders. Running it again on initialised folders changes nothing.
#
# Settings (environment):
#   SOLIDARITY               the command to run (default "solidarity"; tests: "python -m node.cli")
#   SOLIDARITY_INIT_BASE     folder holding one data folder per city (default /nodes)
#   SOLIDARITY_INIT_SCHEME   URL scheme of the nodes' public URLs (default http)
#   SOLIDARITY_INIT_PORT     port in the nodes' public URLs (default 8701)
#   SOLIDARITY_INIT_CITIES   "Name:CC ..." (default "Athens:GR Berlin:DE Barcelona:ES")
#   SOLIDARITY_INIT_URL_<city>  full public URL of one city, overriding scheme://<city>:port
#                            (<city> in lower case, e.g. SOLIDARITY_INIT_URL_athens)
#   SOLIDARITY_INIT_NETWORK  the network's name (default solidarity-demo)
#   SOLIDARITY_INIT_QUORUM   vouches needed to admit a new city (default 2)
#   SOLIDARITY_INIT_USER     when started as root: give the city folders to this user and run
#                            everything as that user (the container's init service does this)
set -euo pipefail

SOLIDARITY=${SOLIDARITY:-solidarity}
BASE=${SOLIDARITY_INIT_BASE:-/nodes}
SCHEME=${SOLIDARITY_INIT_SCHEME:-http}
PORT=${SOLIDARITY_INIT_PORT:-8701}
CITIES=${SOLIDARITY_INIT_CITIES:-Athens:GR Berlin:DE Barcelona:ES}
NETWORK=${SOLIDARITY_INIT_NETWORK:-solidarity-demo}
QUORUM=${SOLIDARITY_INIT_QUORUM:-2}

say() { printf 'init-network: %s\n' "$*" >&2; }

# "solidarity ARGS" runs the configured command (a function, so the steps read as documented).
solidarity() {
    # Word splitting of $SOLIDARITY is intended: it may be "python -m node.cli".
    # shellcheck disable=SC2086
    command $SOLIDARITY "$@"
}

slug_of() { printf '%s' "$1" | tr '[:upper:] ' '[:lower:]-'; }

url_of() {
    local slug=$1 var
    var="SOLIDARITY_INIT_URL_${slug//-/_}"
    printf '%s' "${!var:-${SCHEME}://${slug}:${PORT}}"
}

read -r -a cities <<<"$CITIES"
if [ "${#cities[@]}" -lt 1 ]; then
    say "SOLIDARITY_INIT_CITIES names no city"
    exit 2
fi

# Started as root (a container's init service): hand the empty volumes to the service user and
# continue as that user, so every file is created by the user that will serve it.
if [ "$(id -u)" = 0 ] && [ -n "${SOLIDARITY_INIT_USER:-}" ]; then
    # Only what root still owns (fresh volumes); compose leaves root CAP_CHOWN but not CAP_FOWNER
    # or CAP_DAC_OVERRIDE: so create everything first, chmod before chown, children before $BASE,
    # and leave folders already handed over alone.
    dirs=()
    for spec in "${cities[@]}"; do
        dirs+=("$BASE/$(slug_of "${spec%%:*}")")
    done
    mkdir -p "${dirs[@]}"
    for dir in "${dirs[@]}" "$BASE"; do
        if [ "$(stat -c %u "$dir")" = 0 ]; then
            [ "$dir" = "$BASE" ] || chmod 0700 "$dir"
            chown "$SOLIDARITY_INIT_USER:" "$dir"
        fi
    done
    say "continuing as user $SOLIDARITY_INIT_USER"
    exec setpriv --reuid="$SOLIDARITY_INIT_USER" --regid="$SOLIDARITY_INIT_USER" --clear-groups -- "$0" "$@"
fi

# Already done (a restart of the compose project)? Then only check. Half done: refuse.
done_count=0
for spec in "${cities[@]}"; do
    dir="$BASE/$(slug_of "${spec%%:*}")"
    if [ -e "$dir/config.toml" ] && [ -e "$dir/network.toml" ]; then
        done_count=$((done_count + 1))
    elif [ -e "$dir/config.toml" ] || [ -e "$dir/key.pem" ]; then
        say "$dir holds a node without a network file: a previous run stopped half-way."
        say "remove the data folders (docker compose down --volumes) and run again"
        exit 1
    fi
done
if [ "$done_count" = "${#cities[@]}" ]; then
    say "all ${#cities[@]} nodes exist with a network file; checking them only"
    for spec in "${cities[@]}"; do
        solidarity verify --data "$BASE/$(slug_of "${spec%%:*}")" >&2
    done
    exit 0
elif [ "$done_count" != 0 ]; then
    say "only $done_count of ${#cities[@]} nodes exist: remove the data folders and run again"
    exit 1
fi

# 1. Each city creates its node and tells the others its verifier key.
members=()
for spec in "${cities[@]}"; do
    name=${spec%%:*}
    country=${spec#*:}
    slug=$(slug_of "$name")
    url=$(url_of "$slug")
    say "creating $name ($country) at $url in $BASE/$slug"
    # --contact: the default (solidarity@<host of the URL>) is no e-mail address for a
    # one-label host name such as "athens".
    solidarity init --data "$BASE/$slug" --city "$name" --country "$country" --url "$url" \
        --network "$NETWORK" --contact "solidarity@$slug.example.org" >&2
    key=$(solidarity key show --data "$BASE/$slug")
    members+=(--member "$name,$key,$url")
done

# 2. One founder writes the network file; 3. every founder signs it in turn.
network_file="$BASE/network.toml"
solidarity network create --name "$NETWORK" --quorum "$QUORUM" "${members[@]}" --out "$network_file" >&2
for spec in "${cities[@]}"; do
    solidarity network sign --data "$BASE/$(slug_of "${spec%%:*}")" "$network_file" >&2
done

# 4. Every node installs the signed file; 5. and audits its store.
for spec in "${cities[@]}"; do
    dir="$BASE/$(slug_of "${spec%%:*}")"
    solidarity network join --data "$dir" "$network_file" >&2
    solidarity verify --data "$dir" >&2
done
say "network $NETWORK ready: ${#cities[@]} founders, signed file $network_file"
