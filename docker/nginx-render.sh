#!/bin/sh
# Writes the two files docker/nginx.conf includes, so that the same nginx.conf serves the test
# (scripts/test-scale.ts) and docker/compose.yaml: only the replica list and the listen address
# differ between them.
#
#   sh nginx-render.sh CONF_DIR
#
# CONF_DIR is the directory that holds nginx.conf (nginx resolves `include` relative to it).
# Environment:
#   GRADSERVE_UPSTREAMS  replicas, HOST:PORT separated by spaces or commas (required);
#                        e.g. "gradserve-1:8080 gradserve-2:8080 gradserve-3:8080"
#   NGINX_LISTEN         what nginx listens on (default 8080); e.g. 127.0.0.1:18080
#
# POSIX sh only (the official nginx image has no bash), no envsubst: the replica list has a
# variable length, which a template cannot express.
set -eu

dir="${1:?usage: nginx-render.sh CONF_DIR}"
upstreams="$(printf '%s' "${GRADSERVE_UPSTREAMS:-}" | tr ',' ' ')"
listen="${NGINX_LISTEN:-8080}"

# Refuse anything that is not a plain address, so no input can inject nginx directives.
valid() { printf '%s' "$1" | grep -Eq '^[A-Za-z0-9_.:\[-]+\]?(:[0-9]+)?$'; }

tmp="$dir/nginx-upstreams.conf.tmp.$$"
: >"$tmp"
n=0
for u in $upstreams; do
  valid "$u" || { echo "nginx-render: bad upstream address: $u" >&2; rm -f "$tmp"; exit 2; }
  # A replica that fails to connect is skipped for 10 s; its sessions go to the next on the
  # ring, which takes them over from the shared state directory (see nginx.conf).
  printf 'server %s max_fails=1 fail_timeout=10s;\n' "$u" >>"$tmp"
  n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "nginx-render: GRADSERVE_UPSTREAMS lists no replica" >&2; rm -f "$tmp"; exit 2; }
valid "$listen" || { echo "nginx-render: bad NGINX_LISTEN: $listen" >&2; rm -f "$tmp"; exit 2; }

mv "$tmp" "$dir/nginx-upstreams.conf"
printf 'listen %s;\n' "$listen" >"$dir/nginx-listen.conf"
echo "nginx-render: $n replica(s), listening on $listen" >&2
