#!/usr/bin/env bash
# A plugin from nothing to live and back, against a running wasp (start one with
# `scripts/demo`): scaffold, build, test offline, upload, shadow, activate, roll back.
#
#   WASP_ADMIN_TOKEN=<the token the demo printed> examples/plugin-from-scratch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export WASP_URL=${WASP_URL:-http://127.0.0.1:8080}
export WASP_ADMIN_TOKEN=${WASP_ADMIN_TOKEN:?set WASP_ADMIN_TOKEN to the admin token the demo printed}
cargo build -q -p wasp --bin wasp
wasp=$PWD/target/debug/wasp
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$wasp" plugin new quiet-hours --dir "$work/quiet-hours"
cd "$work/quiet-hours"
"$wasp" plugin build
"$wasp" plugin test target/wasm32-wasip2/release/quiet_hours.wasm --fixtures fixtures

version=$("$wasp" plugin push | tee /dev/stderr | grep -oE '[0-9a-f]{64}' | head -n 1)
"$wasp" plugin activate quiet-hours "$version"
"$wasp" plugin ls
"$wasp" plugin shadow quiet-hours "$version" || true   # the same version in shadow: full agreement
"$wasp" plugin ls quiet-hours
"$wasp" plugin rollback quiet-hours || echo "(nothing earlier to roll back to: this was its first version)"
