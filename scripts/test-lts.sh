#!/usr/bin/env bash
# `npm test` again on Node.js's current LTS (see scripts/node-lts.sh). The native addon is built
# against Node-API, which is stable across Node versions, so the same build loads on both.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(bash scripts/node-lts.sh)"
PATH="$bin:$PATH" node --version
PATH="$bin:$PATH" npm test
