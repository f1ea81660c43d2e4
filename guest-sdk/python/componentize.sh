#!/usr/bin/env bash
# Builds a Python connector into a component: componentize.sh WORLD SRC_DIR OUT.wasm
# WORLD is batch-source, stream-source, sink or transform; SRC_DIR holds app.py (the app module).
# Rebuilds only when a source, the SDK or the contract is newer than OUT.
set -euo pipefail
world="$1" src="$(cd "$2" && pwd)" out="$3"
sdk="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wit="${WEIR_WIT:-$sdk/../../wit}"
if [ -f "$out" ] && [ -z "$(find "$src" "$sdk" "$wit" -name '*.py' -newer "$out" -o -name '*.wit' -newer "$out" | head -n 1)" ]; then
    exit 0
fi
mkdir -p "$(dirname "$out")"
componentize-py -d "$wit" -w "$world" componentize app -p "$src" -p "$sdk" -o "$out" >/dev/null
