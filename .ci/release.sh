#!/usr/bin/env bash
# Release archives for the six targets from one command:
#
#   bash .ci/release.sh [VERSION]      # default: git describe, else 0.0.0-dev
#
# writes dist/fxsh_VERSION_OS_ARCH.tar.gz (.zip for Windows) holding the
# static binary (CGO_ENABLED=0, -trimpath), README.md, and dist/SHA256SUMS.
# Version, commit and date are stamped with -ldflags (fxsh --version).
# Plain `go build` rather than GoReleaser: the whole release is these six
# builds, two archive formats and a checksum file, and CI then needs no tool
# beyond Go, zip and tar. With FXSH_RELEASE_CHECK=1 it unpacks the
# linux/amd64 archive and runs its `fxsh --version` (CI does this).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="/usr/local/go/bin:$PATH" CGO_ENABLED=0
version=${1:-$(git describe --tags --match 'v*' 2>/dev/null || echo 0.0.0-dev)}
version=${version#v}
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
date=$(git log -1 --format=%cI 2>/dev/null || date -u +%FT%TZ)
pkg=github.com/fxshell/fxsh/shell
ldflags="-s -w -X $pkg.version=$version -X $pkg.commit=$commit -X $pkg.date=$date"
rm -rf dist && mkdir -p dist
for t in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64; do
	os=${t%/*} arch=${t#*/}
	name=fxsh_${version}_${os}_${arch}
	mkdir -p "dist/$name"
	exe=fxsh; [ "$os" = windows ] && exe=fxsh.exe
	GOOS=$os GOARCH=$arch go build -trimpath -ldflags "$ldflags" -o "dist/$name/$exe" .
	cp README.md "dist/$name/"
	if [ "$os" = windows ]; then
		(cd dist && zip -qr "$name.zip" "$name")
	else
		tar -C dist -czf "dist/$name.tar.gz" "$name"
	fi
	printf '%-40s %s\n' "$name" "$(stat -c %s "dist/$name/$exe") bytes"
	rm -rf "dist/$name"
done
(cd dist && sha256sum -- *.tar.gz *.zip >SHA256SUMS)
echo "dist/SHA256SUMS: $(wc -l <dist/SHA256SUMS) archives"
if [ "${FXSH_RELEASE_CHECK:-0}" = 1 ]; then
	check=$(mktemp -d)
	(cd dist && sha256sum -c --quiet SHA256SUMS)
	tar -C "$check" -xzf "dist/fxsh_${version}_linux_amd64.tar.gz"
	out=$("$check/fxsh_${version}_linux_amd64/fxsh" --version)
	echo "$out"
	grep -qx "fxsh $version" <<<"$(head -1 <<<"$out")" || { echo "release: --version says $out" >&2; exit 1; }
	grep -q "commit ${commit:0:12}" <<<"$out" || { echo "release: --version lacks the commit" >&2; exit 1; }
	file "$check/fxsh_${version}_linux_amd64/fxsh" 2>/dev/null | grep -q 'statically linked' || { echo "release: not a static binary" >&2; exit 1; }
	rm -rf "$check"
fi
