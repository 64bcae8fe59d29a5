package etcdcat

import (
	"sync"
	"testing"
	"time"

	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/catalogtest"
)

// TestCatalogSuite runs the suite every store.Catalog passes, with two
// catalogs (two masters) on one etcd and a fresh key prefix per subtest.
func TestCatalogSuite(t *testing.T) {
	eps := etcdEndpoints(t)
	var mu sync.Mutex
	prefixes := make(map[string]string) // subtest name → its prefix
	catalogtest.Run(t, catalogtest.Factory{
		Shared: true,
		New: func(t *testing.T, ttl time.Duration) store.Catalog {
			mu.Lock()
			prefix, ok := prefixes[t.Name()]
			if !ok {
				prefix = testPrefix(t, eps)
				prefixes[t.Name()] = prefix
			}
			mu.Unlock()
			return newTestCatalog(t, testConfig(eps, prefix, ttl))
		},
	})
}
