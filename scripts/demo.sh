#!/usr/bin/env bash
# The main job: a 5-node umbra network on 127.0.0.1. Store a 64 MiB file from
# node 0, kill two other nodes with SIGKILL, read the file back on node 2,
# compare, clean up. Usage: demo.sh path/to/umbra
set -euo pipefail
UMBRA=${1:-./bin/umbra}
work=$(mktemp -d)
net="$work/testnet"
cleanup() { "$UMBRA" testnet down --dir "$net" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }
pid_of() { "$UMBRA" testnet status --dir "$net" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['nodes'][$1]['pid'])"; }
node() { echo "$net/node-$1"; }

say "umbra testnet up --nodes 5   (5 daemons on 127.0.0.1, each with its own node directory)"
"$UMBRA" testnet up --dir "$net" --nodes 5

head -c $((64 << 20)) /dev/urandom > "$work/file.bin"
say "node 0: umbra put file.bin   (64 MiB, 3+2: any 3 of 5 shards rebuild a stripe)"
cap=$(UMBRA_PATH=$(node 0) "$UMBRA" put "$work/file.bin")
echo "${cap:0:40}…  (read capability, shortened)"
for i in 0 1 2 3 4; do
  printf 'node %d holds: ' "$i"
  UMBRA_PATH=$(node "$i") "$UMBRA" status --json | python3 -c "import json,sys; s=json.load(sys.stdin); print(f\"{s['storage_used']>>20} MiB in {s['blocks']} blocks\")"
done

say "kill -9 node 1 and node 3   (two of five: the most 3+2 can lose)"
kill -9 "$(pid_of 1)" "$(pid_of 3)"
"$UMBRA" testnet status --dir "$net"

say "node 2: umbra get CAP -o copy.bin"
UMBRA_PATH=$(node 2) "$UMBRA" get "$cap" -o "$work/copy.bin"
cmp "$work/file.bin" "$work/copy.bin"
echo "byte-identical: $(sha256sum < "$work/copy.bin" | cut -c1-16)…"

say "umbra testnet down"
"$UMBRA" testnet down --dir "$net"
