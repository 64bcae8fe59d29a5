package shell

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Build stamps, set by the release build (.goreleaser.yaml) with
//
//	-ldflags "-X github.com/fxshell/fxsh/shell.version=1.2.3
//	          -X github.com/fxshell/fxsh/shell.commit=abcdef0
//	          -X github.com/fxshell/fxsh/shell.date=2026-12-04T10:00:00Z"
//
// Left empty, they come from the build information Go records in every
// binary (debug.ReadBuildInfo): the module version for `go install
// …@v1.2.3`, and the VCS revision and time for a build in a git checkout.
var (
	version = ""
	commit  = ""
	date    = ""
)

// baseVersion is the version of this source tree, used when the build says
// none (a `go build` in a checkout).
const baseVersion = "0.1.0"

// Version is fxsh's version: the release's, the module's, or baseVersion.
var Version = buildVersion()

func buildVersion() string {
	if version != "" {
		return strings.TrimPrefix(version, "v")
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" &&
		!strings.Contains(bi.Main.Version, "-0.") { // a pseudo-version is not a release
		return strings.TrimPrefix(bi.Main.Version, "v")
	}
	return baseVersion
}

// versionText is what fxsh --version prints: the version on the first line,
// then the commit, the build date, the Go toolchain and the catalogs built
// in (a -tags noetcd build has no etcd).
func versionText() string {
	c, d, modified := commit, date, false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if c == "" {
					c = s.Value
				}
			case "vcs.time":
				if d == "" {
					d = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if c == "" {
		c = "unknown"
	} else if len(c) > 12 {
		c = c[:12]
	}
	if modified && commit == "" {
		c += " (with uncommitted changes)"
	}
	if d == "" {
		d = "unknown"
	}
	cats := "catalogs memory, etcd"
	if !etcdCatalogBuilt {
		cats = "catalogs memory (built without etcd: -tags noetcd)"
	}
	return fmt.Sprintf("fxsh %s\ncommit %s\nbuilt %s\n%s %s/%s\n%s\n", Version, c, d, runtime.Version(), runtime.GOOS, runtime.GOARCH, cats)
}
