#!/usr/bin/env bash
# Local round trip on one node: init, put a 64 MiB random file, get it back,
# compare, print what happened, clean up. Usage: demo-local.sh path/to/umbra
set -euo pipefail
UMBRA=${1:-./bin/umbra}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export UMBRA_PATH="$work/node"
echo "== umbra init ($UMBRA_PATH)"
"$UMBRA" init
head -c $((64 << 20)) /dev/urandom > "$work/file.bin"
echo "== umbra put file.bin (64 MiB)"
cap=$("$UMBRA" --offline put "$work/file.bin")
echo "$cap" | cut -c1-40 | sed 's/$/… (read capability, shortened)/'
echo "== umbra get CAP -o copy.bin"
"$UMBRA" --offline get "$cap" -o "$work/copy.bin"
cmp "$work/file.bin" "$work/copy.bin"
echo "== byte-identical: $(sha256sum < "$work/copy.bin" | cut -c1-16)…"
echo "== umbra cap verify CAP"
"$UMBRA" cap verify "$cap" | cut -c1-40 | sed 's/$/… (verify capability, shortened)/'
echo "== blocks on disk: $(du -sh "$UMBRA_PATH/blocks" | cut -f1) for 64 MiB at 3+2"
