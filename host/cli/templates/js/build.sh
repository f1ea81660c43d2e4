#!/usr/bin/env bash
# Builds {{name}}.wasm, the component weir runs (componentize-js embeds SpiderMonkey: ~12 MB).
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules/@weir/guest ] || npm install --no-audit --no-fund --loglevel=error
node node_modules/@weir/guest/componentize.mjs {{kind}} connector.js {{name}}.wasm
echo "built {{name}}.wasm"
