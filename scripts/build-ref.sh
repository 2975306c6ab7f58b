#!/usr/bin/env bash
# Builds eventlake as of a git ref into a binary, for `make bench
# BASELINE=<ref>`: scripts/build-ref.sh <ref> <output>.
set -euo pipefail
ref="$1"
out="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
tmp="$(mktemp -d)"
trap 'git worktree remove --force "$tmp" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add --detach "$tmp" "$ref" >/dev/null
(cd "$tmp" && go build -o "$out" ./cmd/eventlake)
echo "built $ref ($(git rev-parse --short "$ref")) as $out"
