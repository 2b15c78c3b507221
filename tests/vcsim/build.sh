#!/bin/sh
# Build the simulator against Debian's govmomi 0.24 (GOPATH mode, no download) with one patch to
# the stock simulator package: its WaitForUpdatesEx looks for changes every 250 ms, so a change
# (a task that ends, a new object in a watched view) reaches a waiting client up to 250 ms late,
# where vCenter reports it at once. The patched copy looks every 20 ms.
#
#   tests/vcsim/build.sh OUTPUT [GOPATH_OF_GOVMOMI]
set -eu
out=$(realpath -m "$1")
stock=${2:-/usr/share/gocode}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
govmomi="$work/src/github.com/vmware/govmomi"
mkdir -p "$govmomi"
# the rest of govmomi as it is (GOPATH resolves an import path in the first entry that has it)
for entry in "$stock/src/github.com/vmware/govmomi/"*; do
	[ "$(basename "$entry")" = simulator ] || ln -s "$entry" "$govmomi/"
done
cp -r "$stock/src/github.com/vmware/govmomi/simulator" "$govmomi/"
collector="$govmomi/simulator/property_collector.go"
sed -i 's/time\.NewTicker(250 \* time\.Millisecond)/time.NewTicker(20 * time.Millisecond)/' "$collector"
grep -q 'time.NewTicker(20 \* time.Millisecond)' "$collector" || {
	echo "vcsim build: the WaitForUpdatesEx patch no longer applies to $collector" >&2
	exit 1
}
cd "$(dirname "$0")"
# shellcheck disable=SC2086 # extra flags (the image's -trimpath -ldflags) split on purpose
GO111MODULE=off GOPATH="$work:$stock" go build ${VCSIM_GOFLAGS:-} -o "$out" .
