#!/usr/bin/env bash
# Builds this connector: build.sh OUT.wasm
exec "$(dirname "$0")/../../guest-sdk/python/componentize.sh" batch-source "$(dirname "$0")" "$1"
