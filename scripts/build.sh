#!/usr/bin/env bash
# Builds the host (weir) and every plugin, and puts the plugins in dist/plugins/.
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$WEIR_ROOT/scripts/setup.sh"
cd "$WEIR_ROOT"

cargo build --release --locked
# Guests: same workspace and target dir, their own target triple.
guests=(weir-file-source weir-file-sink weir-kafka-source weir-kafka-sink weir-debezium-source weir-hostile weir-counter-stream)
cargo build --release --locked --target wasm32-wasip2 "${guests[@]/#/-p}"

mkdir -p "$WEIR_PLUGINS"
for guest in "${guests[@]}"; do
    name="${guest#weir-}"
    cp "$CARGO_TARGET_DIR/wasm32-wasip2/release/${guest//-/_}.wasm" "$WEIR_PLUGINS/${name//-/_}.wasm"
done
