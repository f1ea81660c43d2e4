# Sourced by test.sh, bench.sh and chaos.sh: the environment, everything built (setup
# included), the Kafka broker installed (the tests and benches start their own brokers from
# WEIR_TANSU), and the repository as the working directory.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$WEIR_ROOT/scripts/build.sh"
WEIR_TANSU="$("$WEIR_ROOT/scripts/tansu.sh")"
export WEIR_TANSU
cd "$WEIR_ROOT"
