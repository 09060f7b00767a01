#!/usr/bin/env bash
# Runs every fuzz target from the committed seed corpus (which it leaves untouched).
#
#   fuzz/run.sh 60                 # each target for 60 s (what .ci/run does)
#   fuzz/run.sh runs 10000000      # each target for 10 million executions
#
# Needs cargo-fuzz (cargo install cargo-fuzz --locked); RUSTC_BOOTSTRAP=1 lets the stable
# toolchain take the sanitizer flags. A crash leaves its input in fuzz/artifacts/TARGET/:
# add it as a regression test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export RUSTC_BOOTSTRAP=1
if [ "${1:-60}" = runs ]; then LIMIT=(-runs="${2:?number of runs}"); else LIMIT=(-max_total_time="${1:-60}"); fi
cargo fuzz build
for target in $(cargo fuzz list); do
  work=$(mktemp -d)
  echo "== fuzz $target ${LIMIT[*]}"
  set +e
  cargo fuzz run "$target" "$work" "corpus/$target" -- "${LIMIT[@]}" -print_final_stats=1 2>&1 |
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done|==[0-9]+==|SUMMARY|.*panicked)'
  status=${PIPESTATUS[0]}
  set -e
  rm -rf "$work"
  [ "$status" = 0 ] || { echo "fuzz target $target failed (exit $status); see fuzz/artifacts/$target" >&2; exit 1; }
done
