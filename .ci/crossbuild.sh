#!/usr/bin/env bash
# Cross-build the fxsh binary and vet every package (tests included) for each
# supported target: linux, windows and darwin on amd64 and arm64, and
# freebsd/amd64; and the build without the etcd catalog (-tags noetcd, what
# the release archives ship) for linux/amd64 and windows/amd64. CGO is off,
# as in the release build.
#
#   bash .ci/crossbuild.sh                        # all nine
#   bash .ci/crossbuild.sh windows/amd64          # only those named
#   bash .ci/crossbuild.sh linux/arm64+noetcd     # OS/ARCH+TAGS (comma-separated)
#
# Prints one line a target with its time; exits 1 if any target fails to
# build or vet (its output is printed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="/usr/local/go/bin:$PATH"
export CGO_ENABLED=0

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	targets=(linux/amd64 linux/arm64 windows/amd64 windows/arm64 darwin/amd64 darwin/arm64 freebsd/amd64
		linux/amd64+noetcd windows/amd64+noetcd)
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=0
for t in "${targets[@]}"; do
	start=$SECONDS
	tags= pkgs=(./...)
	if [[ $t == *+* ]]; then
		# A tag changes only the packages with files that name it (and
		# the binary): vet those, not everything again.
		tags=${t#*+}
		mapfile -t pkgs < <(git grep -l -E "^//go:build .*(${tags//,/|})" -- '*.go' | xargs -n1 dirname | sort -u | sed 's|^|./|')
		pkgs+=(.)
	fi
	osarch=${t%%+*}
	if GOOS=${osarch%/*} GOARCH=${osarch#*/} go build -tags "$tags" -o /dev/null . >"$log" 2>&1 &&
		GOOS=${osarch%/*} GOARCH=${osarch#*/} go vet -tags "$tags" "${pkgs[@]}" >>"$log" 2>&1; then
		printf '%-21s build+vet ok   %3ds\n' "$t" $((SECONDS - start))
	else
		printf '%-21s FAILED         %3ds\n' "$t" $((SECONDS - start))
		cat "$log"
		failed=1
	fi
done
exit $failed
