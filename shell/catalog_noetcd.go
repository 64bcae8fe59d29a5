//go:build noetcd

package shell

import (
	"context"
	"time"

	"github.com/fxshell/fxsh/store"
)

// etcdCatalogBuilt: built with -tags noetcd, this fxsh leaves out
// store/etcdcat and the etcd client, 62 % of the binary (README, "Binary
// size: the etcd client"); serve master --store etcd://… says so.
const etcdCatalogBuilt = false

// etcdDefaultPrefix mirrors etcdcat.DefaultPrefix, which this build does
// not import; only --store's syntax check uses it here.
const etcdDefaultPrefix = "/fxsh/v1/"

func openEtcdCatalog(context.Context, []string, string, time.Duration) (store.Catalog, error) {
	return nil, errNoEtcd
}
