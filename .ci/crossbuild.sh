#!/usr/bin/env bash
# Cross-build the fxsh binary and vet every package (tests included) for each
# supported target: linux, windows and darwin on amd64 and arm64, and
# freebsd/amd64. CGO is off, as in the release build.
#
#   bash .ci/crossbuild.sh                 # all seven targets
#   bash .ci/crossbuild.sh windows/amd64   # only those named
#
# Prints one line a target with its time; exits 1 if any target fails to
# build or vet (its output is printed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="/usr/local/go/bin:$PATH"
export CGO_ENABLED=0

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	targets=(linux/amd64 linux/arm64 windows/amd64 windows/arm64 darwin/amd64 darwin/arm64 freebsd/amd64)
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=0
for t in "${targets[@]}"; do
	start=$SECONDS
	if GOOS=${t%/*} GOARCH=${t#*/} go build -o /dev/null . >"$log" 2>&1 &&
		GOOS=${t%/*} GOARCH=${t#*/} go vet ./... >>"$log" 2>&1; then
		printf '%-14s build+vet ok   %3ds\n' "$t" $((SECONDS - start))
	else
		printf '%-14s FAILED         %3ds\n' "$t" $((SECONDS - start))
		cat "$log"
		failed=1
	fi
done
exit $failed
