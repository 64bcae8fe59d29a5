#!/usr/bin/env bash
# Release archives for the six targets from one command:
#
#   bash .ci/release.sh [VERSION]      # default: git describe, else 0.0.0-dev
#
# writes dist/fxsh_VERSION_OS_ARCH.tar.gz (.zip for Windows) holding the
# static binary (CGO_ENABLED=0, -trimpath, -tags noetcd: no etcd catalog),
# README.md; dist/fxsh-etcd_VERSION_linux_ARCH.tar.gz, the build with the
# etcd catalog for masters that share one; and dist/SHA256SUMS.
# Version, commit and date are stamped with -ldflags (fxsh --version).
# Plain `go build` rather than GoReleaser: the whole release is these six
# builds, two archive formats and a checksum file, and CI then needs no tool
# beyond Go, zip and tar. With FXSH_RELEASE_CHECK=1 it unpacks the
# linux/amd64 archives (both builds) and runs their `fxsh --version` (CI
# does this).
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
# build NAME OS ARCH TAGS: one archive holding the binary and the README.
build() {
	local name=$1 os=$2 arch=$3 tags=$4 exe=fxsh
	mkdir -p "dist/$name"
	[ "$os" = windows ] && exe=fxsh.exe
	GOOS=$os GOARCH=$arch go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "dist/$name/$exe" .
	cp README.md "dist/$name/"
	if [ "$os" = windows ]; then
		(cd dist && zip -qr "$name.zip" "$name")
	else
		tar -C dist -czf "dist/$name.tar.gz" "$name"
	fi
	printf '%-44s %s\n' "$name" "$(stat -c %s "dist/$name/$exe") bytes"
	rm -rf "dist/$name"
}
# The six student archives leave out the etcd catalog (-tags noetcd): 7.0
# instead of 18.6 MB (README, "Binary size: the etcd client"). Several
# masters on one etcd run on servers: fxsh-etcd archives for Linux.
for t in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64; do
	build "fxsh_${version}_${t%/*}_${t#*/}" "${t%/*}" "${t#*/}" noetcd
done
for t in linux/amd64 linux/arm64; do
	build "fxsh-etcd_${version}_${t%/*}_${t#*/}" "${t%/*}" "${t#*/}" ""
done
(cd dist && sha256sum -- *.tar.gz *.zip >SHA256SUMS)
echo "dist/SHA256SUMS: $(wc -l <dist/SHA256SUMS) archives"
if [ "${FXSH_RELEASE_CHECK:-0}" = 1 ]; then
	check=$(mktemp -d)
	(cd dist && sha256sum -c --quiet SHA256SUMS)
	tar -C "$check" -xzf "dist/fxsh_${version}_linux_amd64.tar.gz"
	tar -C "$check" -xzf "dist/fxsh-etcd_${version}_linux_amd64.tar.gz"
	for v in "fxsh_${version}_linux_amd64:without etcd" "fxsh-etcd_${version}_linux_amd64:memory, etcd"; do
		bin=$check/${v%%:*}/fxsh
		out=$("$bin" --version)
		echo "$out"
		grep -qx "fxsh $version" <<<"$(head -1 <<<"$out")" || { echo "release: --version says $out" >&2; exit 1; }
		grep -q "commit ${commit:0:12}" <<<"$out" || { echo "release: --version lacks the commit" >&2; exit 1; }
		grep -q "^catalogs .*${v#*:}" <<<"$out" || { echo "release: ${v%%:*} is not the build it should be: $out" >&2; exit 1; }
		file "$bin" 2>/dev/null | grep -q 'statically linked' || { echo "release: $bin is not a static binary" >&2; exit 1; }
	done
	rm -rf "$check"
fi
