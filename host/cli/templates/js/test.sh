#!/usr/bin/env bash
# Tests the connector's logic under plain Node.js: the SDK works outside a component too.
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules/@weir/guest ] || npm install --no-audit --no-fund --loglevel=error
node --test
{{conformance}}
