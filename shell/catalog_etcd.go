//go:build !noetcd

package shell

import (
	"context"
	"time"

	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/etcdcat"
)

// etcdCatalogBuilt: this build holds the etcd catalog (store/etcdcat and
// the etcd client). Built with -tags noetcd it does not (catalog_noetcd.go).
const etcdCatalogBuilt = true

// etcdDefaultPrefix is the catalog's key prefix without a /PREFIX.
const etcdDefaultPrefix = etcdcat.DefaultPrefix

// openEtcdCatalog connects to the etcd at eps.
func openEtcdCatalog(ctx context.Context, eps []string, prefix string, ttl time.Duration) (store.Catalog, error) {
	return etcdcat.New(ctx, etcdcat.Config{Endpoints: eps, Prefix: prefix, TTL: ttl})
}
