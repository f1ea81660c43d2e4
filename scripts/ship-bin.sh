#!/usr/bin/env bash
# ship-bin.sh BUILT DIR: DIR/weir is the binary to ship, BUILT (cargo's release build)
# without its DWARF and symbols (~50 MB where the build is ~300 MB). Both go to
# DIR/weir.debug beside it, where a backtrace finds them (.gnu_debuglink) to name each
# function with its file and line: ship the two files together. Skipped when DIR/weir is
# newer than BUILT.
set -euo pipefail
built="$1" dir="$2"
mkdir -p "$dir"
if [ "$built" -nt "$dir/weir" ]; then
    objcopy --only-keep-debug "$built" "$dir/weir.debug"
    objcopy --strip-all --add-gnu-debuglink="$dir/weir.debug" "$built" "$dir/weir.new"
    mv "$dir/weir.new" "$dir/weir"
fi
