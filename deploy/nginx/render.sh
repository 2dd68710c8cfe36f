#!/bin/sh
# Render deploy/nginx/ganserve.conf.template into an nginx config file.
#
#   GANSERVE_UPSTREAMS="host:port [host:port ...]" [GANSERVE_PROXY_LISTEN=8080] \
#       [GANSERVE_PROXY_CACHE_DIR=/var/cache/nginx/ganserve] sh render.sh TEMPLATE OUTPUT
#
# One `server` line per upstream address. POSIX sh and awk only: it runs in the nginx image
# (docker-compose.yml) and in the tests alike, so both serve the same config.
set -eu

template="${1:?usage: render.sh TEMPLATE OUTPUT}"
output="${2:?usage: render.sh TEMPLATE OUTPUT}"
upstreams="${GANSERVE_UPSTREAMS:?GANSERVE_UPSTREAMS must list the replicas as host:port, space separated}"
listen="${GANSERVE_PROXY_LISTEN:-8080}"
cache_dir="${GANSERVE_PROXY_CACHE_DIR:-/var/cache/nginx/ganserve}"

servers=""
for address in $upstreams; do
    servers="${servers}    server ${address};\n"
done

# awk -v turns the "\n" escapes into newlines. Write to a temporary file first, so that a
# failed render never leaves a half-written config for nginx to load.
awk -v servers="$servers" -v listen="$listen" -v cache_dir="$cache_dir" '
    /^@GANSERVE_SERVERS@$/ { printf "%s", servers; next }
    { gsub(/@GANSERVE_LISTEN@/, listen); gsub(/@GANSERVE_CACHE_DIR@/, cache_dir); print }
' "$template" > "$output.tmp"
mv "$output.tmp" "$output"
echo "render.sh: $output: upstreams $upstreams, listening on $listen"
