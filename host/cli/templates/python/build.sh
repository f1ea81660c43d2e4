#!/usr/bin/env bash
# Builds {{name}}.wasm, the component weir runs (componentize-py embeds CPython: ~18 MB).
set -euo pipefail
cd "$(dirname "$0")"
command -v componentize-py >/dev/null || python3 -m pip install -q componentize-py==0.25.1
"{{sdk}}/componentize.sh" {{kind}} . {{name}}.wasm
echo "built {{name}}.wasm"
