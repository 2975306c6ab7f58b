#!/usr/bin/env bash
# `make test-rest`: the catalog conformance suite and the end-to-end
# ingest/query case against a REST catalog,
# SeaweedFS's built-in Iceberg REST catalog (S3 Table Buckets), whose S3
# gateway also serves the warehouse. Not run by CI: building SeaweedFS
# takes about four minutes on a 2-core machine, and the REST catalog is
# optional for eventlake. Usage: scripts/test-rest.sh [version]
#
# `weed mini` runs the whole stack in one process: the S3 gateway on 8333
# and the Iceberg REST catalog on 8181 (SeaweedFS's defaults; both must be
# free), with the table bucket created by -tableBucket. Catalog requests
# are signed with AWS SigV4 (catalog.sigv4), with the S3 credentials.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-v0.0.0-20261109003541-7506e5f91cd6}"
export PATH="$PATH:$(go env GOPATH)/bin"

if ! command -v weed >/dev/null 2>&1; then
  echo "test-rest: building SeaweedFS ${version} (about five minutes)"
  # `go install weed@version` refuses it: SeaweedFS's go.mod has replace
  # directives. Build from a writable copy of the module instead.
  dir="$(go mod download -json "github.com/seaweedfs/seaweedfs@${version}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  src="$(mktemp -d)"
  cp -r "$dir"/. "$src"
  chmod -R u+w "$src"
  (cd "$src" && go build -o "$(go env GOPATH)/bin/weed" ./weed)
  rm -rf "$src"
fi

work="$(mktemp -d)"
export AWS_ACCESS_KEY_ID="ELREST$(date +%s)"
export AWS_SECRET_ACCESS_KEY="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
weed mini -dir="$work/data" -tableBucket=eventlake >"$work/weed.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT

for _ in $(seq 1 120); do
  if curl -sS -o /dev/null "http://127.0.0.1:8181/v1/config" 2>/dev/null; then break; fi
  sleep 1
done
curl -sS -o /dev/null "http://127.0.0.1:8181/v1/config" || { tail -50 "$work/weed.log"; exit 1; }

EVENTLAKE_TEST_REST_URI="http://127.0.0.1:8181" \
EVENTLAKE_TEST_REST_WAREHOUSE="s3://eventlake" \
EVENTLAKE_TEST_REST_SIGV4=1 \
EVENTLAKE_TEST_REST_S3_ENDPOINT="http://127.0.0.1:8333" \
EVENTLAKE_TEST_REST_S3_ACCESS_KEY="$AWS_ACCESS_KEY_ID" \
EVENTLAKE_TEST_REST_S3_SECRET_KEY="$AWS_SECRET_ACCESS_KEY" \
  go test -count=1 -timeout 20m -run 'TestCatalogConformance/rest$|TestCatalogsEndToEnd/rest$' -v ./catalog/ ./internal/e2e/
