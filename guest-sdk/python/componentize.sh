#!/usr/bin/env bash
# Builds a Python connector into a component: componentize.sh WORLD SRC_DIR OUT.wasm
# WORLD is batch-source, stream-source, sink or transform; SRC_DIR holds app.py (the app module).
# Rebuilds only when a source, the SDK or the contract is newer than OUT.
set -euo pipefail
world="$1" src="$(cd "$2" && pwd)" out="$3"
sdk="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wit="${WEIR_WIT:-$sdk/../../wit}"
if [ -f "$out" ] && [ -z "$(find "$src" "$sdk" "$wit" -name '*.py' -newer "$out" -o -name '*.wit' -newer "$out" -o -name requirements.txt -newer "$out" | head -n 1)" ]; then
    exit 0
fi
# Third-party packages: SRC_DIR/requirements.txt, installed into SRC_DIR/.weir-deps and
# bundled. Only pure-Python wheels (tagged `any`): a compiled extension is built for the
# machine, and cannot load inside the component.
deps=()
if [ -f "$src/requirements.txt" ]; then
    if [ ! -d "$src/.weir-deps" ] || [ "$src/requirements.txt" -nt "$src/.weir-deps" ]; then
        rm -rf "$src/.weir-deps"
        PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check \
            --target "$src/.weir-deps" --platform any --only-binary=:all: -r "$src/requirements.txt" || {
            echo "componentize.sh: cannot install $src/requirements.txt: only pure-Python packages (wheels tagged 'any') can go into a component" >&2
            rm -rf "$src/.weir-deps"
            exit 1
        }
    fi
    deps=(-p "$src/.weir-deps")
fi
mkdir -p "$(dirname "$out")"
componentize-py -d "$wit" -w "$world" componentize app -p "$src" "${deps[@]}" -p "$sdk" -o "$out" >/dev/null
