#!/usr/bin/env bash
# Runs govulncheck against Go's vulnerability database without reaching
# vuln.go.dev: the database comes from the golang.org/x/vulndb module that
# tools/go.mod pins (fetched through the module proxy), indexed locally.
# Update the pin to see newer reports:
#   (cd tools && go get -tool golang.org/x/vulndb/cmd/indexdb@<pseudo-version>)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
version=$($GO list -modfile=tools/go.mod -m -f '{{.Version}}' golang.org/x/vulndb)
src=$($GO mod download -modfile=tools/go.mod -json "golang.org/x/vulndb@$version" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
db=$(mktemp -d)
trap 'rm -rf "$db"' EXIT
$GO tool -modfile=tools/go.mod indexdb -vulns "$src/data/osv" -out "$db"
echo "govulncheck with golang.org/x/vulndb@$version on $($GO env GOVERSION)"
$GO tool -modfile=tools/go.mod govulncheck -db "file://$db" ./...
