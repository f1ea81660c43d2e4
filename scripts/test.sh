#!/usr/bin/env bash
# The README's second command: builds everything and runs every test.
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$WEIR_ROOT/scripts/build.sh"
cd "$WEIR_ROOT"
# Host crates and the end-to-end tests (which run the built weir binary and plugins).
cargo test --release --locked
# Guest crates' own unit tests, compiled natively.
cargo test --release --locked -p weir-file-source -p weir-file-sink -p weir-guest
