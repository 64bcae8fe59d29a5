// Package etcdcat is a store.Catalog kept in etcd, so that several masters
// share one catalog: a file server registered on one master is found by the
// clients of every other.
//
// Catalog is the implementation; New connects it with a Config. Writes go to
// etcd: each registration gets its own lease, its file keys are written
// first (in transactions of at most MaxOpsPerTxn operations) and its server
// key last, as the commit marker (the key layout is in record.go).
// Heartbeat is a lease keep-alive, Unregister revokes the lease, and a dead
// master's registrations vanish when their leases expire. Reads never go to
// etcd: a view (view.go) kept current by a watch on the prefix answers
// them, with a trigram index (index.go) for searches. After a write, the
// catalog waits until its watch has seen the write's revision, so a client
// reads its own writes. When etcd cannot be reached every method returns an
// error wrapping store.ErrUnavailable within Config.OpTimeout, and reads do
// so once the watch has heard nothing for Config.StaleAfter; when etcd comes
// back, the watch resumes (or the view is reloaded whole, if the watch was
// compacted away) and expired leases have removed the registrations of the
// file servers that died meanwhile.
package etcdcat

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/fxshell/fxsh/store"
)

// Defaults for Config.
const (
	DefaultPrefix      = "/fxsh/v1/"
	DefaultTTL         = 30 * time.Second
	DefaultDialTimeout = 5 * time.Second
	DefaultOpTimeout   = 5 * time.Second
	DefaultStaleAfter  = 5 * time.Second
)

// Limits.
const (
	// MaxOpsPerTxn is the most operations one transaction carries: etcd's
	// default --max-txn-ops. Larger registrations span several transactions.
	MaxOpsPerTxn = 128
	// MaxTxnBytes is the most key and value bytes one transaction carries,
	// well below etcd's default --max-request-bytes (1.5 MiB).
	MaxTxnBytes = 1 << 20
	// MaxFiles is the most files one registration may hold. The master
	// allows far fewer (10 000); this cap keeps any caller from writing an
	// unbounded list into the shared store.
	MaxFiles = 100_000
	// reloadPage is how many keys one Get of a reload fetches.
	reloadPage = 5000
)

// Config says where the catalog lives and how it behaves.
type Config struct {
	Endpoints   []string      // etcd client URLs or HOST:PORT; required
	Prefix      string        // key prefix; DefaultPrefix if empty; must end in '/'
	TTL         time.Duration // a registration's lease TTL (rounded up to whole seconds); DefaultTTL if zero
	DialTimeout time.Duration // DefaultDialTimeout if zero
	OpTimeout   time.Duration // bound on each method's etcd calls; DefaultOpTimeout if zero
	StaleAfter  time.Duration // reads fail once the watch has heard nothing for this long; DefaultStaleAfter if zero
}

func (c *Config) setDefaults() error {
	if len(c.Endpoints) == 0 {
		return errors.New("etcdcat: no endpoints")
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		return fmt.Errorf("etcdcat: prefix %q does not end in /", c.Prefix)
	}
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = DefaultStaleAfter
	}
	return nil
}

// Catalog is a store.Catalog in etcd. It is safe for concurrent use.
type Catalog struct {
	cfg    Config
	client *clientv3.Client
	ttlSec int64
	cancel context.CancelFunc // stops run
	done   chan struct{}      // closed when run returns

	closeOnce    sync.Once
	closeErr     error
	progressBusy atomic.Bool // a progress request is in flight

	// mu protects the fields below. run is the only writer of view (but
	// for serverState.heartbeat), rev and heard.
	mu       sync.RWMutex
	view     *view
	rev      int64           // every change up to rev is in view
	heard    time.Time       // when the watch last heard from etcd
	changed  chan struct{}   // closed and replaced when rev or heard moves
	watchCtx context.Context // the live watch's context, for progress requests
	closed   bool            // Close was called
	runErr   error           // why the view may be behind, for error messages
	stats    Stats           // counters

	regMu    sync.Mutex                  // protects regLocks and own
	regLocks map[string]*regLock         // per-address write serialization
	own      map[string]clientv3.LeaseID // registrations made through this catalog

	nowFunc func() time.Time // time source
}

// regLock serializes this catalog's writes to one address.
type regLock struct {
	mu   sync.Mutex
	refs int // guarded by Catalog.regMu
}

// Stats are counters about the view, for tests and the master's status.
type Stats struct {
	Reloads int   // full reloads of the view (the first load included)
	Rev     int64 // revision the view is at
	Bad     int   // keys or values under the prefix that could not be parsed
	Pending int   // file keys waiting for their server key
}

var _ store.Catalog = (*Catalog)(nil)

// New connects to etcd and loads the catalog under cfg.Prefix. It fails with
// an error wrapping store.ErrUnavailable when etcd cannot be reached within
// cfg.DialTimeout (or ctx's deadline).
func New(ctx context.Context, cfg Config) (*Catalog, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		Logger:      zap.NewNop(), // roles never print
		// Notice a connection that died silently (etcd's default
		// --grpc-keepalive-min-time is 5 s; gRPC's own floor is 10 s).
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("etcdcat: connecting to %v: %w (%w)", cfg.Endpoints, store.ErrUnavailable, err)
	}
	c := &Catalog{
		cfg:      cfg,
		client:   client,
		ttlSec:   int64(math.Ceil(cfg.TTL.Seconds())),
		done:     make(chan struct{}),
		changed:  make(chan struct{}),
		view:     newView(cfg.Prefix),
		nowFunc:  time.Now,
		regLocks: make(map[string]*regLock),
		own:      make(map[string]clientv3.LeaseID),
	}
	lctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	v, rev, err := c.load(lctx)
	cancel()
	if err != nil {
		client.Close()
		return nil, c.unavailable("loading catalog", ctx, err)
	}
	c.install(v, rev)
	runCtx, stop := context.WithCancel(context.Background())
	c.cancel = stop
	go c.run(runCtx, rev)
	return c, nil
}

// Close stops the watch and closes the connection. Registrations made
// through this catalog stay in etcd until their leases expire or their file
// servers register again elsewhere, exactly as if the master had died.
func (c *Catalog) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.cancel()
		<-c.done
		c.closeErr = c.client.Close()
		if errors.Is(c.closeErr, context.Canceled) {
			c.closeErr = nil
		}
	})
	return c.closeErr
}

// ErrClosed is returned after Close. It wraps store.ErrUnavailable, as the
// in-memory catalog's does.
var ErrClosed = fmt.Errorf("catalog closed: %w", store.ErrUnavailable)

// opContext bounds one method's etcd calls by cfg.OpTimeout.
func (c *Catalog) opContext(ctx context.Context) (context.Context, context.CancelFunc, error) {
	c.mu.RLock()
	closed := c.closed
	c.mu.RUnlock()
	if closed {
		return nil, nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	octx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
	return octx, cancel, nil
}

// unavailable wraps an etcd failure. The caller's own cancellation is passed
// through as it is; everything else means the catalog cannot be reached.
func (c *Catalog) unavailable(what string, ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("etcdcat: %s: %w", what, err)
	}
	return fmt.Errorf("etcdcat: %s: %w (%w)", what, store.ErrUnavailable, err)
}

func (c *Catalog) lockAddr(addr string) func() {
	c.regMu.Lock()
	l := c.regLocks[addr]
	if l == nil {
		l = &regLock{}
		c.regLocks[addr] = l
	}
	l.refs++
	c.regMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		c.regMu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(c.regLocks, addr)
		}
		c.regMu.Unlock()
	}
}

// Register records srv and replaces its whole file list: a new lease, the
// file keys, the server key last; then the old registration's lease is
// revoked, which deletes its keys.
//
// Kept whole: one etcd transaction built in order (lease, files, then the
// server key as the commit marker).
func (c *Catalog) Register(ctx context.Context, srv store.Server, files []store.File) error {
	if srv.Addr == "" {
		return errors.New("etcdcat: registering: empty address")
	}
	switch srv.Role {
	case "":
		srv.Role = store.RoleServer
	case store.RoleServer, store.RoleReceiver:
	default:
		return fmt.Errorf("etcdcat: registering %s: unknown role %q", srv.Addr, srv.Role)
	}
	if len(files) > MaxFiles {
		return fmt.Errorf("etcdcat: registering %s: %d files, more than %d", srv.Addr, len(files), MaxFiles)
	}
	// One key per name: the last of several files with the same name wins.
	byName := make(map[string]int, len(files))
	for i, f := range files {
		if u := f.MTime.Unix(); u < minUnix || u > maxUnix {
			return fmt.Errorf("etcdcat: registering %s: file %q: modification time %v out of range", srv.Addr, f.Name, f.MTime)
		}
		if !validHash(f.Hash) {
			return fmt.Errorf("etcdcat: registering %s: file %q: bad hash %q", srv.Addr, f.Name, f.Hash)
		}
		if f.Size < 0 {
			return fmt.Errorf("etcdcat: registering %s: file %q: negative size", srv.Addr, f.Name)
		}
		byName[f.Name] = i
	}
	recs := make([]string, 0, len(byName))
	for i, f := range files {
		if byName[f.Name] != i {
			continue
		}
		v := string(appendFileRecord(nil, f))
		// The lease is a fixed 16 hex digits, so any lease gives the size.
		if n := len(fileKey(c.cfg.Prefix, srv.Addr, 0, f.Name)) + len(v); n > MaxTxnBytes {
			return fmt.Errorf("etcdcat: registering %s: file %q: record of %d bytes too large", srv.Addr, f.Name, n)
		}
		recs = append(recs, v)
	}
	octx, cancel, err := c.opContext(ctx)
	if err != nil {
		return fmt.Errorf("etcdcat: registering %s: %w", srv.Addr, err)
	}
	defer cancel()
	unlock := c.lockAddr(srv.Addr)
	defer unlock()

	grant, err := c.client.Grant(octx, c.ttlSec)
	if err != nil {
		return c.unavailable("registering "+srv.Addr+": granting lease", ctx, err)
	}
	lease := grant.ID
	ops := make([]clientv3.Op, 0, len(recs)+1)
	sizes := make([]int, 0, len(recs)+1)
	for i, f := range files {
		if byName[f.Name] != i {
			continue
		}
		k, v := fileKey(c.cfg.Prefix, srv.Addr, int64(lease), f.Name), recs[len(ops)]
		ops = append(ops, clientv3.OpPut(k, v, clientv3.WithLease(lease)))
		sizes = append(sizes, len(k)+len(v))
	}
	now := c.nowFunc().Round(0)
	sk := serverKey(c.cfg.Prefix, srv.Addr)
	sv := appendServerRecord(nil, serverRecord{Role: srv.Role, Name: srv.Name, Files: len(ops), Registered: now})
	ops = append(ops, clientv3.OpPut(sk, string(sv), clientv3.WithLease(lease), clientv3.WithPrevKV()))
	sizes = append(sizes, len(sk)+len(sv))

	var last *clientv3.TxnResponse
	for len(ops) > 0 {
		n, bytes := 0, 0
		for n < len(ops) && n < MaxOpsPerTxn && bytes+sizes[n] <= MaxTxnBytes {
			bytes += sizes[n]
			n++
		}
		last, err = c.client.Txn(octx).Then(ops[:n]...).Commit()
		if err != nil {
			c.revoke(lease)
			return c.unavailable("registering "+srv.Addr+": writing", ctx, err)
		}
		ops, sizes = ops[n:], sizes[n:]
	}
	c.regMu.Lock()
	c.own[srv.Addr] = lease
	c.regMu.Unlock()
	rev := last.Header.Revision
	put := last.Responses[len(last.Responses)-1].GetResponsePut()
	if prev := put.GetPrevKv(); prev != nil && prev.Lease != 0 && prev.Lease != int64(lease) {
		// If this fails the old keys still do no harm: readers ignore file
		// keys whose lease is not the server key's, and no one keeps the
		// old lease alive, so it expires within the TTL.
		if r, err := c.client.Revoke(octx, clientv3.LeaseID(prev.Lease)); err == nil {
			rev = max(rev, r.Header.Revision)
		}
	}
	if err := c.waitRev(octx, rev); err != nil {
		return c.unavailable("registering "+srv.Addr+": waiting for the watch", ctx, err)
	}
	return nil
}

// revoke drops a lease on a best-effort basis, after a failed registration:
// if etcd is unreachable the lease expires by itself.
func (c *Catalog) revoke(lease clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.OpTimeout)
	defer cancel()
	c.client.Revoke(ctx, lease) //nolint:errcheck // best effort, see above
}

// leaseOf finds the lease of addr's registration: in the view, or, when the
// view has not seen it yet (a registration through another master a moment
// ago), in etcd.
func (c *Catalog) leaseOf(ctx context.Context, addr string) (clientv3.LeaseID, error) {
	c.mu.RLock()
	st := c.view.servers[addr]
	c.mu.RUnlock()
	if st != nil {
		return clientv3.LeaseID(st.lease), nil
	}
	resp, err := c.client.Get(ctx, serverKey(c.cfg.Prefix, addr))
	if err != nil {
		return 0, err
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].Lease == 0 {
		return 0, store.ErrNotFound
	}
	return clientv3.LeaseID(resp.Kvs[0].Lease), nil
}

// Heartbeat keeps addr's registration alive: one lease keep-alive. It
// returns store.ErrNotFound when the lease is gone (it expired, say while
// etcd was down), so that the file server registers again.
func (c *Catalog) Heartbeat(ctx context.Context, addr string) error {
	octx, cancel, err := c.opContext(ctx)
	if err != nil {
		return fmt.Errorf("etcdcat: heartbeat %s: %w", addr, err)
	}
	defer cancel()
	lease, err := c.leaseOf(octx, addr)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("etcdcat: heartbeat %s: %w", addr, store.ErrNotFound)
	}
	if err != nil {
		return c.unavailable("heartbeat "+addr, ctx, err)
	}
	if _, err := c.client.KeepAliveOnce(octx, lease); err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return fmt.Errorf("etcdcat: heartbeat %s: %w", addr, store.ErrNotFound)
		}
		return c.unavailable("heartbeat "+addr, ctx, err)
	}
	now := c.nowFunc().Round(0)
	c.mu.Lock()
	if st := c.view.servers[addr]; st != nil && st.lease == int64(lease) {
		st.heartbeat = now
	}
	c.mu.Unlock()
	return nil
}

// Unregister revokes the lease of addr's registration made through this
// catalog, which deletes its keys in one revision, and waits until the view
// has dropped them. A registration made (or made again, after a failover)
// through another master is that master's to remove: for it Unregister
// returns store.ErrNotFound and changes nothing, so that a master closing a
// stale connection cannot drop a file server that moved elsewhere.
func (c *Catalog) Unregister(ctx context.Context, addr string) error {
	octx, cancel, err := c.opContext(ctx)
	if err != nil {
		return fmt.Errorf("etcdcat: unregistering %s: %w", addr, err)
	}
	defer cancel()
	unlock := c.lockAddr(addr)
	defer unlock()
	c.regMu.Lock()
	lease, ok := c.own[addr]
	c.regMu.Unlock()
	if !ok {
		return fmt.Errorf("etcdcat: unregistering %s: %w", addr, store.ErrNotFound)
	}
	resp, err := c.client.Revoke(octx, lease)
	if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return c.unavailable("unregistering "+addr, ctx, err)
	}
	c.regMu.Lock()
	if c.own[addr] == lease {
		delete(c.own, addr)
	}
	c.regMu.Unlock()
	if err != nil {
		// Gone already: expired, or replaced through another master.
		return fmt.Errorf("etcdcat: unregistering %s: %w", addr, store.ErrNotFound)
	}
	if err := c.waitRev(octx, resp.Header.Revision); err != nil {
		return c.unavailable("unregistering "+addr+": waiting for the watch", ctx, err)
	}
	return nil
}

// forget drops this catalog's claim on registrations that left the view
// (expired, revoked or replaced), so that own stays as small as the view.
func (c *Catalog) forget(gone []pendingKey) {
	if len(gone) == 0 {
		return
	}
	c.regMu.Lock()
	defer c.regMu.Unlock()
	for _, g := range gone {
		if c.own[g.addr] == clientv3.LeaseID(g.lease) {
			delete(c.own, g.addr)
		}
	}
}

// validHash reports whether h is a content hash (store.ValidHash).
func validHash(h string) bool { return store.ValidHash(h) }

// sync waits until the view has caught up with etcd's current revision.
func (c *Catalog) sync(ctx context.Context) error {
	resp, err := c.client.Get(ctx, serverKey(c.cfg.Prefix, ""), clientv3.WithCountOnly())
	if err != nil {
		return err
	}
	return c.waitRev(ctx, resp.Header.Revision)
}

// readable reports why reads cannot be served now, if they cannot.
func (c *Catalog) readable(ctx context.Context, what string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("etcdcat: %s: %w", what, err)
	}
	c.mu.RLock()
	closed, heard, runErr := c.closed, c.heard, c.runErr
	c.mu.RUnlock()
	if closed {
		return fmt.Errorf("etcdcat: %s: %w", what, ErrClosed)
	}
	if age := c.nowFunc().Sub(heard); age > c.cfg.StaleAfter {
		if runErr == nil {
			runErr = errors.New("no word from etcd")
		}
		return fmt.Errorf("etcdcat: %s: view %v old: %w (%w)", what, age.Round(time.Millisecond), store.ErrUnavailable, runErr)
	}
	return nil
}

// Servers lists live servers sorted by Addr.
func (c *Catalog) Servers(ctx context.Context) ([]store.Server, error) {
	if err := c.readable(ctx, "listing servers"); err != nil {
		return nil, err
	}
	c.mu.RLock()
	out := make([]store.Server, 0, len(c.view.servers))
	for _, st := range c.view.servers {
		s := st.srv
		s.LastSeen = s.Registered
		if st.heartbeat.After(s.LastSeen) {
			s.LastSeen = st.heartbeat
		}
		out = append(out, s)
	}
	c.mu.RUnlock()
	slices.SortFunc(out, func(a, b store.Server) int { return strings.Compare(a.Addr, b.Addr) })
	return out, nil
}

// Files lists entries whose name matches glob (path.Match syntax, "" or "*"
// for all), sorted by name then hash.
func (c *Catalog) Files(ctx context.Context, glob string) ([]store.Entry, error) {
	if err := c.readable(ctx, "listing files"); err != nil {
		return nil, err
	}
	c.mu.RLock()
	out, err := c.view.idx.files(glob)
	c.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("etcdcat: listing files: glob %q: %w", glob, err)
	}
	return out, nil
}

// FilesUnder lists at most max entries under the folder prefix that sort
// after the cursor, sorted by name then hash.
func (c *Catalog) FilesUnder(ctx context.Context, prefix string, after store.Cursor, max int) ([]store.Entry, error) {
	if err := c.readable(ctx, "listing files"); err != nil {
		return nil, err
	}
	c.mu.RLock()
	out := c.view.idx.under(prefix, after, max)
	c.mu.RUnlock()
	return out, nil
}

// Search returns at most max entries whose name contains every word of q,
// case-insensitively, sorted by name then hash.
func (c *Catalog) Search(ctx context.Context, q string, max int) ([]store.Entry, error) {
	if err := c.readable(ctx, "searching"); err != nil {
		return nil, err
	}
	words := splitLower(q)
	c.mu.RLock()
	out := c.view.idx.search(words, max)
	c.mu.RUnlock()
	return out, nil
}

// splitLower splits a query into lower-cased words, each once.
func splitLower(q string) []string {
	words := strings.Fields(strings.ToLower(q))
	slices.Sort(words)
	return slices.Compact(words)
}

// Stats returns counters about the view.
func (c *Catalog) Stats() Stats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s := c.stats
	s.Rev = c.rev
	s.Bad = c.view.bad
	s.Pending = c.view.pendingFiles()
	return s
}
