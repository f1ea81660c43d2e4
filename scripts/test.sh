#!/usr/bin/env bash
# The README's second command: builds everything and runs every test.
set -euo pipefail
source "$(dirname "$0")/ready.sh"
# Property tests (what untrusted input reaches) run a fixed number of cases from a fixed
# seed here, so a run is repeatable; see README's Security section to run them longer.
export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261130}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# Guest crates' own unit tests (compiled natively), then the host crates and the
# end-to-end tests, which run the built weir binary and plugins.
cargo test --release --locked -p weir-file-source -p weir-file-sink -p weir-debezium-source -p weir-jq -p weir-mask -p weir-guest 2>&1 | tee -a "$log"
# The Python and JavaScript SDKs' own unit tests, under plain CPython and Node.js; their
# counts join the closing line.
python="$(python3 -m unittest discover -s guest-sdk/python/tests 2>&1)" || { echo "$python"; exit 1; }
echo "$python"
echo "test result: ok. $(sed -n 's/^Ran \([0-9]*\) tests\?.*/\1/p' <<<"$python") passed; 0 failed (Python SDK)" >> "$log"
node="$(node --test guest-sdk/js/test/ 2>&1)" || { echo "$node"; exit 1; }
echo "$node" | grep -E '^# (tests|pass|fail)'
echo "test result: ok. $(sed -n 's/^# pass \([0-9]*\)$/\1/p' <<<"$node") passed; 0 failed (JavaScript SDK)" >> "$log"
cargo test --release --locked 2>&1 | tee -a "$log"
# A lean runtime (built without Kafka and the PostgreSQL client) links, and refuses
# plugins that import them.
cargo test --release --locked -p weir-runtime --no-default-features --lib 2>&1 | tee -a "$log"
# One closing line for the whole run (cargo's last line is a doctest summary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "weir: %d passed, %d failed\n", p, f }' "$log"
