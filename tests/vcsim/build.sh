#!/bin/sh
# Build the simulator against Debian's govmomi 0.24 (GOPATH mode, no download) with one patch to
# the stock simulator package (property_collector.patch): its WaitForUpdatesEx looks for changes
# on a 250 ms ticker, so a change (a task that ends, a new object in a watched view) reaches a
# waiting client up to 250 ms late, where vCenter reports it at once. The patched copy wakes on
# each change.
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
here=$(dirname "$(realpath "$0")")
(cd "$govmomi/simulator" && git apply "$here/property_collector.patch") || {
	echo "vcsim build: property_collector.patch no longer applies to govmomi's simulator" >&2
	exit 1
}
cd "$here"
# shellcheck disable=SC2086 # extra flags (the image's -trimpath -ldflags) split on purpose
GO111MODULE=off GOPATH="$work:$stock" go build ${VCSIM_GOFLAGS:-} -o "$out" .
