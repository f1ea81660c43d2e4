#!/usr/bin/env bash
# Installs what a fresh machine lacks to build weir and its plugins. Idempotent.
set -euo pipefail
source "$(dirname "$0")/env.sh"

if ! command -v cargo >/dev/null; then
    echo "setup: cargo is missing; install Rust with rustup first" >&2
    exit 1
fi
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "setup: adding the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
fi
# rusqlite's bundled SQLite and other -sys crates need a C compiler.
if ! command -v cc >/dev/null; then
    echo "setup: installing a C compiler"
    apt-get update -qq && apt-get install -y -qq build-essential
fi
