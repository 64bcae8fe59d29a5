// Package masterclient is the client side of fxsh's master protocol.
//
// Client answers the shell's list, search and peers, and sends push
// offers (offers.go: each a SentOffer whose answer arrives on a channel): it keeps one connection to the first master of Config.Masters
// that answers, and when a query fails on a broken connection it
// reconnects (failing over to the next master) and retries once.
// Registrar keeps a file server's or a receiver's registration alive: it
// registers, heartbeats every interval the master announces, registers
// again after Update, and when the master goes away reconnects with
// jittered exponential backoff, failing over across Masters, and registers
// again. Both report what happens through Config.OnEvent (events.go); the
// connection they share is in session.go.
package masterclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/store"
)

// Defaults of Config and fixed timers.
const (
	DefaultDialTimeout = 5 * time.Second
	DefaultBackoffMin  = 250 * time.Millisecond
	DefaultBackoffMax  = 5 * time.Second
	writeTimeout       = 10 * time.Second
	// MaxPeers bounds a PEERS reply the client accepts: a master could
	// otherwise make it hold any number of records.
	MaxPeers = 1000000
)

// Errors of the handshake.
var (
	ErrKeyRequired     = errors.New("master requires a key (--key or FXSH_KEY)")
	ErrMasterNotProven = errors.New("master did not prove it holds our key")
	ErrNoMasters       = errors.New("no master address given")
)

// Config says how to reach the masters.
type Config struct {
	Masters []string // HOST:PORT of each master, tried in order
	Key     []byte   // shared key; when set, masters must prove they hold it too
	Role    string   // HELLO role for Dial: "client" (default), "server" or "receiver"

	DialTimeout time.Duration                                            // DefaultDialTimeout
	Dial        func(ctx context.Context, addr string) (net.Conn, error) // a net.Dialer by default
	BackoffMin  time.Duration                                            // first reconnect delay (DefaultBackoffMin)
	BackoffMax  time.Duration                                            // largest reconnect delay (DefaultBackoffMax)

	// Trace, if set, sees every protocol line; OnEvent is told of
	// connections, registrations and push offers. Both are called from
	// the client's goroutines and must not block.
	Trace   func(line.TraceEvent)
	OnEvent func(Event)
}

func (c Config) withDefaults() Config {
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Dial == nil {
		var d net.Dialer
		c.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = max(DefaultBackoffMax, c.BackoffMin)
	}
	if c.Role == "" {
		c.Role = "client"
	}
	return c
}

func (c *Config) event(e Event) {
	if c.OnEvent != nil {
		e.Time = time.Now()
		c.OnEvent(e)
	}
}

// connect tries the masters in order starting at start and returns the
// first session made and its index. Refusals are returned as they are,
// so that a wrong key is not hidden behind a later dial error.
func connect(ctx context.Context, cfg *Config, start int, role string, onPush func(line.Msg)) (*session, int, error) {
	if len(cfg.Masters) == 0 {
		return nil, 0, ErrNoMasters
	}
	var errs []error
	for i := range cfg.Masters {
		idx := (start + i) % len(cfg.Masters)
		s, err := dialSession(ctx, cfg, cfg.Masters[idx], role, onPush)
		if err == nil {
			return s, idx, nil
		}
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		errs = append(errs, err)
	}
	return nil, 0, errors.Join(errs...)
}

// Client queries masters. It is safe for concurrent use; queries are
// sent one at a time.
type Client struct {
	cfg Config

	mu     sync.Mutex // guards the fields below
	sess   *session
	idx    int // index in cfg.Masters of the master in use
	closed bool

	offerMu sync.Mutex             // guards the offers in flight (offers.go)
	offers  map[string]*SentOffer  // by id
	early   map[string]earlyAnswer // answers that overtook Offer's reply
}

// Dial connects to the first master of cfg.Masters that completes the
// handshake.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	c := &Client{cfg: cfg.withDefaults()}
	if _, err := c.session(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Master returns the address of the master in use.
func (c *Client) Master() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg.Masters[c.idx]
}

var errClientClosed = errors.New("masterclient: client closed")

func (c *Client) session(ctx context.Context) (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClientClosed
	}
	if c.sess != nil && c.sess.alive() {
		return c.sess, nil
	}
	s, idx, err := connect(ctx, &c.cfg, c.idx, c.cfg.Role, c.push)
	if err != nil {
		return nil, err
	}
	c.sess, c.idx = s, idx
	go s.keepalive(nil)
	go c.watch(s)
	c.cfg.event(Event{Kind: Connected, Master: s.master})
	return s, nil
}

// watch reports the end of a session as Lost (unless Close ended it): the
// offers made on it can no longer be answered, and a sender waiting for an
// answer must know.
func (c *Client) watch(s *session) {
	<-s.done
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if !closed {
		ev := Event{Kind: Lost, Master: s.master, Err: s.reason()}
		c.route(ev)
		c.cfg.event(ev)
	}
}

// do runs one query, and once more on a fresh connection when the first
// try failed for a reason a reconnection can cure: a broken connection,
// or a master whose catalog is unavailable (another master may do).
func (c *Client) do(ctx context.Context, q func(*session) error) error {
	s, err := c.session(ctx)
	if err != nil {
		return err
	}
	err = q(s)
	var refusal *line.Error
	if err == nil || ctx.Err() != nil || errors.As(err, &refusal) && refusal.Code != line.CodeUnavailable {
		return err
	}
	s.close() // watch reports it as Lost
	if refusal != nil {
		c.mu.Lock()
		c.idx = (c.idx + 1) % len(c.cfg.Masters)
		c.mu.Unlock()
	}
	s2, err2 := c.session(ctx)
	if err2 != nil {
		return fmt.Errorf("%w (reconnecting: %w)", err, err2)
	}
	return q(s2)
}

// List returns the entries whose name matches glob (path.Match syntax, ""
// for all), at most max (0: the master's default, line.DefaultListMax);
// more says the master had more. No match is an empty list, not an error.
func (c *Client) List(ctx context.Context, glob string, max int) (entries []store.Entry, more bool, err error) {
	req := line.NewMsg(line.VerbList)
	if glob != "" {
		req = req.With("glob", glob)
	}
	if max > 0 {
		req = req.WithInt("max", int64(max))
	}
	err = c.do(ctx, func(s *session) error {
		var err error
		entries, more, err = s.entries(ctx, req)
		return err
	})
	return entries, more, err
}

// ErrFolderTooBig is a folder listing that went past the limit given to
// ListFolder.
var ErrFolderTooBig = errors.New("folder too big")

// ListFolder returns every entry under the folder prefix ("" or ending in
// "/"), at any depth, sorted by name then hash, read page by page (pages of
// line.DefaultPageMax records). More than limit entries is ErrFolderTooBig:
// a folder listing is held whole, so the caller bounds it. The master's
// pages are checked, not trusted: a record outside the folder or not after
// the previous one (an older master that ignores prefix=, or a hostile
// one) is a *line.ProtocolError, so a listing always ends.
func (c *Client) ListFolder(ctx context.Context, prefix string, limit int) ([]store.Entry, error) {
	if err := line.CheckPrefix(prefix); err != nil {
		return nil, err
	}
	var all []store.Entry
	q := line.ListQuery{Folder: true, Prefix: prefix, Max: line.DefaultPageMax}
	for {
		var page []store.Entry
		var more bool
		req := line.ListQueryMsg(q)
		err := c.do(ctx, func(s *session) error {
			var err error
			page, more, err = s.entries(ctx, req)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			switch {
			case !store.UnderPrefix(e.Name, prefix):
				return nil, &line.ProtocolError{Reason: "folder listing: a name outside " + strconv.Quote(prefix), Input: e.Name}
			case !q.After.After(e.Name, e.Hash):
				return nil, &line.ProtocolError{Reason: "folder listing: a name out of order", Input: e.Name}
			}
			q.After = store.Cursor{Name: e.Name, Hash: e.Hash}
		}
		if all = append(all, page...); len(all) > limit {
			return nil, fmt.Errorf("%w: more than %d files under %q", ErrFolderTooBig, limit, prefix)
		}
		if !more || len(page) == 0 {
			return all, nil
		}
	}
}

// Search returns at most max (0: line.DefaultSearchMax) entries whose name
// contains every word of q, case-insensitively; more says there were more.
func (c *Client) Search(ctx context.Context, q string, max int) (entries []store.Entry, more bool, err error) {
	req := line.NewMsg(line.VerbSearch).With("q", q)
	if max > 0 {
		req = req.WithInt("max", int64(max))
	}
	err = c.do(ctx, func(s *session) error {
		var err error
		entries, more, err = s.entries(ctx, req)
		return err
	})
	return entries, more, err
}

func (s *session) entries(ctx context.Context, req line.Msg) (es []store.Entry, more bool, err error) {
	err = s.roundTrip(ctx, []line.Msg{req}, func(next func() (line.Msg, error)) error {
		n, m, err := readHead(next, line.MaxResults)
		if err != nil || n == 0 {
			return err
		}
		more = m.Value("more") == "1"
		es = make([]store.Entry, 0, n)
		for range n {
			r, err := next()
			if err != nil {
				return err
			}
			e, err := line.ParseFile(r, s.maxName)
			if err != nil {
				return err
			}
			es = append(es, e)
		}
		_, err = expect(next, line.VerbEnd)
		return err
	})
	return es, more, err
}

// readHead reads "FOUND n=K" (returning K, at most limit) or "NOT FOUND"
// (returning 0).
func readHead(next func() (line.Msg, error), limit int) (int, line.Msg, error) {
	m, err := next()
	if err != nil {
		return 0, m, err
	}
	switch {
	case m.Verb == line.VerbErr:
		return 0, m, asError(m)
	case m.Verb == line.VerbNot && m.Arg(0) == "FOUND":
		return 0, m, nil
	case m.Verb != line.VerbFound:
		return 0, m, &line.ProtocolError{Reason: "expected FOUND or NOT FOUND", Input: m.String()}
	}
	n, err := m.Int("n")
	if err != nil || n < 0 || n > int64(limit) {
		return 0, m, &line.ProtocolError{Reason: "bad record count", Input: m.Value("n")}
	}
	return int(n), m, nil
}

// Peers returns the live file servers and receivers.
func (c *Client) Peers(ctx context.Context) ([]store.Server, error) {
	var out []store.Server
	err := c.do(ctx, func(s *session) error {
		out = nil
		return s.roundTrip(ctx, []line.Msg{line.NewMsg(line.VerbPeers)}, func(next func() (line.Msg, error)) error {
			n, _, err := readHead(next, MaxPeers)
			if err != nil || n == 0 {
				return err
			}
			out = make([]store.Server, 0, min(n, 1024))
			for range n {
				m, err := next()
				if err != nil {
					return err
				}
				p, err := line.ParsePeer(m)
				if err != nil {
					return err
				}
				out = append(out, p)
			}
			_, err = expect(next, line.VerbEnd)
			return err
		})
	})
	return out, err
}

// Ping checks that the master answers.
func (c *Client) Ping(ctx context.Context) error {
	return c.do(ctx, func(s *session) error { return s.ping(ctx) })
}

func (c *Client) push(m line.Msg) {
	if ev, ok := pushEvent(m); ok {
		c.route(ev)
		c.cfg.event(ev)
	}
}

// Close says BYE and closes the connection.
func (c *Client) Close() error {
	c.mu.Lock()
	s := c.sess
	c.closed, c.sess = true, nil
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.roundTrip(ctx, []line.Msg{line.NewMsg(line.VerbBye)}, func(next func() (line.Msg, error)) error {
		_, err := expect(next, line.VerbBye)
		return err
	})
	s.close()
	return nil
}
