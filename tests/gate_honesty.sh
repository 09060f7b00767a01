#!/usr/bin/env bash
# How honest is the gate? For each binary given: how many of 20 candidates trained on
# label-shuffled IRIS (`train --data shuffled.csv --name iris --publish --seed S`, S = 1..20)
# it promotes over the 0.967 IRIS champion, each on a fresh copy of the shipped registry
# (models/, whose champion has no rows record) and on a fresh registry whose champion the
# same binary trained and published first; and its decision on the lifecycle quickstart
# (`data add` + `train --dataset iris --publish` on a copy of models/).
#
#   tests/gate_honesty.sh [BINARY...]      (default: target/debug/treeserve)
#
# The bar is 0 promotions and a promoted quickstart; with GATE_HONESTY_BAR=1 (CI) a binary
# that misses it fails the script. Run from the repository root.
set -euo pipefail

bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=(target/debug/treeserve)
iris=models/data/iris.csv
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# IRIS with its labels permuted (a fixed permutation: the features are untouched).
python3 - "$iris" "$work/shuffled.csv" <<'EOF'
import random, sys
lines = open(sys.argv[1]).read().strip().split("\n")
rows = [l.split(",") for l in lines[1:]]
labels = [r[-1] for r in rows]
random.Random(0).shuffle(labels)
with open(sys.argv[2], "w") as f:
    f.write(lines[0] + "\n")
    f.writelines(",".join(r[:-1] + [l]) + "\n" for r, l in zip(rows, labels))
EOF

for bin in "${bins[@]}"; do
    bin=$(realpath "$bin")
    echo "== $bin"
    missed=0
    for start in shipped recorded; do
        promoted=0
        for seed in $(seq 1 20); do
            reg="$work/reg-$start-$seed"
            rm -rf "$reg"
            if [ $start = shipped ]; then
                cp -r models "$reg"
            else
                mkdir -p "$reg"
                "$bin" train --data "$iris" --name iris --publish "$reg" >/dev/null 2>&1 ||
                    { echo "training the champion failed" >&2; exit 1; }
            fi
            set +e
            out=$("$bin" train --data "$work/shuffled.csv" --name iris --publish "$reg" \
                --seed "$seed" 2>&1 >/dev/null)
            code=$?
            set -e
            # 0: promoted; 3: refused by the gate; anything else is not a decision.
            case $code in
                0) promoted=$((promoted + 1)) ;;
                3) ;;
                *) echo "seed $seed ($start champion): exit $code, not a gate decision: $out" >&2
                   exit 1 ;;
            esac
        done
        echo "label-shuffled candidates promoted ($start champion): $promoted of 20"
        missed=$((missed + promoted))
    done
    reg="$work/quickstart"
    rm -rf "$reg" && cp -r models "$reg"
    "$bin" data add "$iris" --name iris --registry "$reg" >/dev/null
    set +e
    out=$("$bin" train --dataset iris --publish --registry "$reg" 2>&1 >/dev/null)
    code=$?
    set -e
    echo "quickstart: exit $code"
    echo "$out" | grep -E '^gate:|decision:|\[(pass|FAIL)\]' | sed 's/^/  /'
    if [ "${GATE_HONESTY_BAR:-0}" = 1 ] && { [ "$code" != 0 ] || [ "$missed" != 0 ]; }; then
        echo "the gate misses its bar: $missed shuffled candidates promoted, quickstart exit $code" >&2
        exit 1
    fi
done
