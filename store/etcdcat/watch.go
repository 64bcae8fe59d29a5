package etcdcat

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Timing of the watch loop.
const (
	minReloadBackoff = 100 * time.Millisecond
	maxReloadBackoff = 2 * time.Second
	// progressDelay is how long a writer waits for its revision to come
	// through the watch before it asks etcd for a progress notification
	// (needed when the write changed nothing under the prefix).
	progressDelay = 50 * time.Millisecond
	// progressTimeout bounds one progress request.
	progressTimeout = time.Second
)

// load reads the whole prefix at one revision, in pages, into a new view.
func (c *Catalog) load(ctx context.Context) (*view, int64, error) {
	v := newView(c.cfg.Prefix)
	end := clientv3.GetPrefixRangeEnd(c.cfg.Prefix)
	key := c.cfg.Prefix
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(reloadPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := c.client.Get(ctx, key, opts...)
		if err != nil {
			return nil, 0, fmt.Errorf("reading %s: %w", c.cfg.Prefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			v.put(string(kv.Key), kv.Value, kv.Lease)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			v.flush()
			return v, rev, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// install makes v, loaded at rev, the view. Heartbeat times recorded for
// registrations that are still there carry over.
func (c *Catalog) install(v *view, rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for addr, old := range c.view.servers {
		if st := v.servers[addr]; st != nil && st.lease == old.lease {
			st.heartbeat = old.heartbeat
		}
	}
	c.view = v
	c.rev = rev
	c.heard = c.nowFunc()
	c.runErr = nil
	c.stats.Reloads++
	c.notifyLocked()
}

// notifyLocked wakes everyone waiting in waitRev. c.mu must be held.
func (c *Catalog) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// run keeps the view current: it follows the watch from the revision after
// rev, and when the watch ends (compacted away, or broken for good) reloads
// the view and follows again, backing off while etcd is unreachable.
func (c *Catalog) run(ctx context.Context, rev int64) {
	defer close(c.done)
	for {
		err := c.follow(ctx, rev+1)
		if ctx.Err() != nil {
			return
		}
		c.setRunErr(err)
		backoff := minReloadBackoff
		for {
			lctx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
			v, r, err := c.load(lctx)
			cancel()
			if err == nil {
				c.install(v, r)
				rev = r
				break
			}
			c.setRunErr(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxReloadBackoff)
		}
	}
}

func (c *Catalog) setRunErr(err error) {
	c.mu.Lock()
	c.runErr = err
	c.mu.Unlock()
}

// follow applies the watch's events from revision from on, until the watch
// ends; it returns why. Every StaleAfter/4 it asks for a progress
// notification, so that an idle but healthy etcd still counts as heard.
func (c *Catalog) follow(ctx context.Context, from int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := c.client.Watch(wctx, c.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(from))
	c.mu.Lock()
	c.watchCtx = wctx
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.watchCtx = nil
		c.mu.Unlock()
	}()
	tick := time.NewTicker(c.cfg.StaleAfter / 4)
	defer tick.Stop()
	for {
		select {
		case resp, ok := <-wch:
			if !ok {
				return errors.New("watch closed")
			}
			if err := resp.Err(); err != nil {
				return fmt.Errorf("watch: %w", err)
			}
			if resp.Canceled {
				return errors.New("watch canceled")
			}
			c.apply(&resp)
		case <-tick.C:
			c.requestProgress()
		}
	}
}

// apply applies one watch response to the view.
func (c *Catalog) apply(resp *clientv3.WatchResponse) {
	c.mu.Lock()
	var gone []pendingKey
	defer func() { c.forget(gone) }() // after c.mu is released: regMu is never taken under it
	defer c.mu.Unlock()
	rev := c.rev
	for _, ev := range resp.Events {
		switch ev.Type {
		case mvccpb.PUT:
			c.view.put(string(ev.Kv.Key), ev.Kv.Value, ev.Kv.Lease)
		case mvccpb.DELETE:
			c.view.delete(string(ev.Kv.Key))
		}
		rev = max(rev, ev.Kv.ModRevision)
	}
	c.view.flush()
	gone = c.view.takeGone()
	// A progress notification promises that every event up to its
	// revision has been delivered; an event response promises only its
	// events.
	if resp.IsProgressNotify() {
		rev = max(rev, resp.Header.Revision)
	}
	c.rev = rev
	c.heard = c.nowFunc()
	c.runErr = nil
	c.notifyLocked()
}

// requestProgress asks etcd for a progress notification on the live watch,
// without waiting for it; at most one request is in flight.
func (c *Catalog) requestProgress() {
	c.mu.RLock()
	wctx := c.watchCtx
	c.mu.RUnlock()
	if wctx == nil || !c.progressBusy.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer c.progressBusy.Store(false)
		// The request must carry the watch context's metadata (its stream
		// key), so it derives from wctx.
		ctx, cancel := context.WithTimeout(wctx, progressTimeout)
		defer cancel()
		c.client.RequestProgress(ctx) //nolint:errcheck // the next tick asks again
	}()
}

// waitRev waits until the view has every change up to rev.
func (c *Catalog) waitRev(ctx context.Context, rev int64) error {
	for {
		c.mu.RLock()
		cur, changed := c.rev, c.changed
		c.mu.RUnlock()
		if cur >= rev {
			return nil
		}
		t := time.NewTimer(progressDelay)
		select {
		case <-changed:
		case <-t.C:
			c.requestProgress()
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("view at revision %d, want %d: %w", cur, rev, ctx.Err())
		}
		t.Stop()
	}
}
