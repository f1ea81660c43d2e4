#!/usr/bin/env bash
# Builds this test guest: build.sh OUT.wasm
exec "$(dirname "$0")/../../../guest-sdk/python/componentize.sh" sink "$(dirname "$0")" "$1"
