#!/usr/bin/env bash
# Builds this test guest: build.sh OUT.wasm
exec node "$(dirname "$0")/../../../guest-sdk/js/componentize.mjs" sink "$(dirname "$0")/connector.js" "$1"
