// Command etcd is the etcd v3.6 server, built from the Go module proxy so that
// CI and developers can run fxsh's etcd catalog tests against a real etcd
// without a prebuilt binary. This directory is its own Go module, kept out of
// fxsh's go.mod: see .ci/etcd.sh, which builds and runs it.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
