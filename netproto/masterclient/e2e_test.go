package masterclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/netproto/master"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/catalogtest"
	"github.com/fxshell/fxsh/store/memcat"
)

const wait = 20 * time.Second // generous: assert outcomes, not timing

type testMaster struct {
	srv  *master.Server
	addr string
	errc chan error
}

// startMaster runs a master with an in-memory catalog on addr
// ("127.0.0.1:0" for any port).
func startMaster(t *testing.T, addr string, cfg master.Config) *testMaster {
	t.Helper()
	var ln net.Listener
	var err error
	// A port just freed by a stopped master may need a moment.
	for deadline := time.Now().Add(wait); ; time.Sleep(50 * time.Millisecond) {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	cat := memcat.New(time.Minute)
	cfg.Catalog = cat
	m := &testMaster{srv: master.New(cfg), addr: ln.Addr().String(), errc: make(chan error, 1)}
	go func() { m.errc <- m.srv.Serve(ln) }()
	t.Cleanup(func() { m.stop(t); cat.Close() })
	return m
}

func (m *testMaster) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := m.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func testCfg(masters ...string) Config {
	return Config{Masters: masters, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, DialTimeout: 2 * time.Second}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

func startReg(t *testing.T, ctx context.Context, cfg Config, addr string, files ...store.File) *Registrar {
	t.Helper()
	r, err := StartRegistrar(ctx, cfg, Registration{Addr: addr, Files: files})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	if err := r.WaitRegistered(ctxT(t)); err != nil {
		t.Fatalf("registering %s: %v", addr, err)
	}
	return r
}

func listNames(t *testing.T, c *Client) []string {
	t.Helper()
	es, _, err := c.List(ctxT(t), "", 0)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(wait); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", wait, what)
		}
	}
}

func TestEndToEnd(t *testing.T) {
	m := startMaster(t, "127.0.0.1:0", master.Config{Heartbeat: 200 * time.Millisecond, TTL: 2 * time.Second})
	cfg := testCfg(m.addr)
	startReg(t, ctxT(t), cfg, ":5001", catalogtest.File("music/Song One.mp3", "1"), catalogtest.File("shared.iso", "s"))
	startReg(t, ctxT(t), cfg, ":5002", catalogtest.File("docs/Report.pdf", "2"), catalogtest.File("shared.iso", "s"))
	killCtx, kill := context.WithCancel(context.Background())
	defer kill()
	startReg(t, killCtx, cfg, ":5003", catalogtest.File("photos/beach.jpg", "3"))

	c, err := Dial(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := listNames(t, c); !slices.Equal(got, []string{"docs/Report.pdf", "music/Song One.mp3", "photos/beach.jpg", "shared.iso"}) {
		t.Fatalf("List = %q", got)
	}
	es, _, err := c.Search(ctxT(t), "SONG mp3", 0)
	if err != nil || len(es) != 1 || es[0].Name != "music/Song One.mp3" || !slices.Equal(es[0].Servers, []string{"127.0.0.1:5001"}) {
		t.Errorf("Search = %+v, %v", es, err)
	}
	if es, _, err := c.Search(ctxT(t), "nothing here", 0); err != nil || len(es) != 0 {
		t.Errorf("Search miss = %+v, %v", es, err)
	}
	if es, _, _ := c.List(ctxT(t), "shared.iso", 0); len(es) != 1 || len(es[0].Servers) != 2 {
		t.Errorf("shared.iso = %+v, want one entry on two servers", es)
	}
	ps, err := c.Peers(ctxT(t))
	if err != nil || len(ps) != 3 {
		t.Fatalf("Peers = %+v, %v", ps, err)
	}

	// Heartbeats keep everyone through several TTLs.
	time.Sleep(3 * time.Second)
	if ps, _ := c.Peers(ctxT(t)); len(ps) != 3 {
		t.Errorf("after 3 s with a 2 s TTL: %d peers, want 3", len(ps))
	}

	// The third server's connection closes without BYE: its files go.
	kill()
	eventually(t, "photos/beach.jpg still listed", func() bool {
		return !slices.Contains(listNames(t, c), "photos/beach.jpg")
	})
	if ps, _ := c.Peers(ctxT(t)); len(ps) != 2 {
		t.Errorf("Peers after kill = %+v", ps)
	}
}

func TestMasterRestart(t *testing.T) {
	var mu sync.Mutex
	var kinds []EventKind
	m := startMaster(t, "127.0.0.1:0", master.Config{})
	cfg := testCfg(m.addr)
	rcfg := cfg
	rcfg.OnEvent = func(e Event) {
		t.Logf("%s event %v %s %v", time.Now().Format("15:04:05.000"), e.Kind, e.Master, e.Err)
		mu.Lock()
		kinds = append(kinds, e.Kind)
		mu.Unlock()
	}
	startReg(t, ctxT(t), rcfg, ":5001", catalogtest.File("survivor.txt", "s"))
	c, err := Dial(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := listNames(t, c); !slices.Equal(got, []string{"survivor.txt"}) {
		t.Fatalf("List = %q", got)
	}
	m.stop(t)
	m2 := startMaster(t, m.addr, master.Config{})
	_ = m2
	// The client reconnects and retries; the registrar registers again.
	eventually(t, "registration not back after the restart", func() bool {
		es, _, err := c.List(ctxT(t), "", 0)
		if err != nil {
			t.Logf("List: %v", err)
		}
		return err == nil && len(es) == 1
	})
	// The master records the registration before the registrar reads its
	// OK, so the second Registered event may follow the listing a moment later.
	eventually(t, "no Lost and second Registered event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		registered := 0
		for _, k := range kinds {
			if k == Registered {
				registered++
			}
		}
		return slices.Contains(kinds, Lost) && registered >= 2
	})
}

func TestFailover(t *testing.T) {
	a := startMaster(t, "127.0.0.1:0", master.Config{})
	b := startMaster(t, "127.0.0.1:0", master.Config{})
	cfg := testCfg(a.addr, b.addr)
	r := startReg(t, ctxT(t), cfg, ":5001", catalogtest.File("moved.txt", "m"))
	if r.Master() != a.addr {
		t.Errorf("registered on %s, want the first master %s", r.Master(), a.addr)
	}
	c, err := Dial(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a.stop(t)
	eventually(t, "registration not moved to the second master", func() bool { return r.Master() == b.addr })
	// The client's next query fails on A, reconnects to B and is retried.
	eventually(t, "client never found the file on B", func() bool {
		es, _, err := c.List(ctxT(t), "", 0)
		return err == nil && len(es) == 1
	})
	if c.Master() != b.addr {
		t.Errorf("client on %s, want %s", c.Master(), b.addr)
	}
}

func TestKeys(t *testing.T) {
	keyed := startMaster(t, "127.0.0.1:0", master.Config{Key: []byte("right")})
	open := startMaster(t, "127.0.0.1:0", master.Config{})
	tests := []struct {
		name   string
		master string
		key    string
		want   func(error) bool
	}{
		{"right key", keyed.addr, "right", func(err error) bool { return err == nil }},
		{"wrong key", keyed.addr, "wrong", func(err error) bool {
			var e *line.Error
			return errors.As(err, &e) && e.Code == line.CodeAuth
		}},
		{"no key", keyed.addr, "", func(err error) bool { return errors.Is(err, ErrKeyRequired) }},
		{"master without key", open.addr, "right", func(err error) bool { return errors.Is(err, ErrMasterNotProven) }},
		{"neither", open.addr, "", func(err error) bool { return err == nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testCfg(tt.master)
			if tt.key != "" {
				cfg.Key = []byte(tt.key)
			}
			c, err := Dial(ctxT(t), cfg)
			if !tt.want(err) {
				t.Errorf("Dial: %v", err)
			}
			if err == nil {
				if err := c.Ping(ctxT(t)); err != nil {
					t.Errorf("Ping: %v", err)
				}
				c.Close()
			}
			r, err := StartRegistrar(ctxT(t), cfg, Registration{Addr: ":5000", Files: []store.File{catalogtest.File("a", "a")}})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.WaitRegistered(ctxT(t)); !tt.want(err) {
				t.Errorf("WaitRegistered: %v", err)
			}
			r.Close(ctxT(t))
		})
	}
}

func TestHostileNeighbours(t *testing.T) {
	m := startMaster(t, "127.0.0.1:0", master.Config{MaxFiles: 10, MaxLine: 512})
	cfg := testCfg(m.addr)
	startReg(t, ctxT(t), cfg, ":5001", catalogtest.File("fine.txt", "f"))
	c, err := Dial(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	raw := func(lines string) string {
		nc, err := net.Dial("tcp", m.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(wait))
		io.WriteString(nc, lines)
		out, _ := io.ReadAll(nc) // until the master closes
		return string(out)
	}
	got := raw("HELLO fxsh/1 role=client\nGARBAGE=1\nLIST =\nLIST glob=" + strings.Repeat("x", 600) + "\n")
	want := "ERR 400 invalid verb: \"GARBAGE=1\"\nERR 400 invalid key: \"=\"\nERR 413 line longer than 512 bytes\n"
	if !strings.HasSuffix(got, want) || !strings.HasPrefix(got, "HI fxsh/1 ") {
		t.Errorf("raw client got %q, want HI then %q", got, want)
	}
	if got := listNames(t, c); !slices.Equal(got, []string{"fine.txt"}) {
		t.Errorf("after the hostile client: List = %q", got)
	}

	// 11 files where the master takes 10: refused with 414.
	var files []store.File
	for i := range 11 {
		files = append(files, catalogtest.File(fmt.Sprintf("f%d", i), "x"))
	}
	r, err := StartRegistrar(ctxT(t), cfg, Registration{Addr: ":5002", Files: files})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctxT(t))
	var e *line.Error
	if err := r.WaitRegistered(ctxT(t)); !errors.As(err, &e) || e.Code != line.CodeTooMany {
		t.Errorf("11 files: %v, want ERR 414", err)
	}
	// And the master's own check, past the registrar's.
	got = raw("HELLO fxsh/1 role=server\nREGISTER addr=:1 n=11\n")
	if !strings.HasSuffix(got, "ERR 414 too many files: 11, at most 10 a registration; closing\n") {
		t.Errorf("raw 11 files: %q", got)
	}
	if err := c.Ping(ctxT(t)); err != nil {
		t.Errorf("Ping after all that: %v", err)
	}
}

func TestPush(t *testing.T) {
	m := startMaster(t, "127.0.0.1:0", master.Config{})
	rxEvents := make(chan Event, 16)
	rcfg := testCfg(m.addr)
	rcfg.OnEvent = func(e Event) { rxEvents <- e }
	rx, err := StartRegistrar(ctxT(t), rcfg, Registration{Addr: ":6000", Role: store.RoleReceiver, Name: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close(ctxT(t))
	if err := rx.WaitRegistered(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	txEvents := make(chan Event, 16)
	tcfg := testCfg(m.addr)
	tcfg.OnEvent = func(e Event) { txEvents <- e }
	c, err := Dial(ctxT(t), tcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ps, _ := c.Peers(ctxT(t))
	if len(ps) != 1 || ps[0].Role != store.RoleReceiver || ps[0].Name != "bob" {
		t.Fatalf("Peers = %+v", ps)
	}
	f := catalogtest.File("gift.txt", "g")
	for i, accept := range []bool{true, false} {
		so, err := c.Offer(ctxT(t), "bob", f, ":5000")
		if err != nil || so.ID != fmt.Sprint(i+1) {
			t.Fatalf("Offer = %+v, %v", so, err)
		}
		id := so.ID
		ev := waitEvent(t, rxEvents, Offered, nil)
		if o := ev.Offer; o.ID != id || o.Name != "gift.txt" || o.Hash != f.Hash || o.From != "127.0.0.1:5000" {
			t.Errorf("offer %+v", o)
		}
		if accept {
			err = rx.Accept(ctxT(t), id)
		} else {
			err = rx.Refuse(ctxT(t), id, "no room")
		}
		if err != nil {
			t.Fatal(err)
		}
		ans := waitEvent(t, txEvents, OfferAnswered, nil).Offer
		if ans.ID != id || ans.Accepted != accept || (!accept && ans.Reason != "no room") {
			t.Errorf("answer %+v, want accepted=%v", ans, accept)
		}
		// The same answer on the offer's own channel.
		if ev := waitEvent(t, so.Events, OfferAnswered, nil); ev.Offer.ID != id || ev.Offer.Accepted != accept {
			t.Errorf("answer on Events %+v, want id %s accepted=%v", ev.Offer, id, accept)
		}
		so.Close()
	}
	var e *line.Error
	if _, err := c.Offer(ctxT(t), "carol", f, ":5000"); !errors.As(err, &e) || e.Code != line.CodeNotFound {
		t.Errorf("offer to nobody: %v", err)
	}

	// The receiver reports how an accepted push ended; the sender hears it.
	for _, failure := range []string{"", "hash mismatch"} {
		so, err := c.Offer(ctxT(t), "bob", f, ":5000")
		if err != nil {
			t.Fatal(err)
		}
		id := so.ID
		waitEvent(t, rxEvents, Offered, func(e Event) bool { return e.Offer.ID == id })
		if err := rx.Finish(ctxT(t), id, failure); !errors.As(err, &e) || e.Code != line.CodeState {
			t.Errorf("Finish before Accept: %v, want ERR 403", err)
		}
		if err := rx.Accept(ctxT(t), id); err != nil {
			t.Fatal(err)
		}
		if err := rx.Finish(ctxT(t), id, failure); err != nil {
			t.Fatal(err)
		}
		fin := waitEvent(t, txEvents, OfferFinished, nil).Offer
		if fin.ID != id || fin.Reason != failure {
			t.Errorf("finished %+v, want id %s, reason %q", fin, id, failure)
		}
		waitEvent(t, so.Events, OfferAnswered, nil)
		if fin := waitEvent(t, so.Events, OfferFinished, nil).Offer; fin.ID != id || fin.Reason != failure {
			t.Errorf("finished on Events %+v, want id %s, reason %q", fin, id, failure)
		}
		so.Close()
		if err := rx.Finish(ctxT(t), id, ""); !errors.As(err, &e) || e.Code != line.CodeNotFound {
			t.Errorf("second Finish: %v, want ERR 404", err)
		}
	}

	// A receiver that goes away fails the push it accepted.
	so, err := c.Offer(ctxT(t), "bob", f, ":5000")
	if err != nil {
		t.Fatal(err)
	}
	id := so.ID
	waitEvent(t, rxEvents, Offered, func(e Event) bool { return e.Offer.ID == id })
	if err := rx.Accept(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, txEvents, OfferAnswered, nil)
	rx.Close(ctxT(t))
	if fin := waitEvent(t, txEvents, OfferFinished, func(e Event) bool { return e.Offer.ID == id }).Offer; fin.Reason != line.ReasonReceiverGone {
		t.Errorf("finished %+v, want receiver gone", fin)
	}
}

// TestOfferRouting: answers reach the offer they belong to, also one that
// overtook Offer's reply; the number kept early is bounded; a lost session
// fails every offer; a closed offer gets nothing more.
func TestOfferRouting(t *testing.T) {
	c := &Client{}
	answer := func(id string, accepted bool) Event {
		return Event{Kind: OfferAnswered, Offer: &Offer{ID: id, Accepted: accepted}}
	}
	c.route(answer("1", true)) // before Offer returned offer 1
	c.route(Event{Kind: OfferFinished, Offer: &Offer{ID: "1", Accepted: true, Reason: "hash mismatch"}})
	o1 := c.track("1")
	if ev := <-o1.Events; ev.Kind != OfferAnswered || !ev.Offer.Accepted {
		t.Errorf("first early event %+v", ev)
	}
	if ev := <-o1.Events; ev.Kind != OfferFinished || ev.Offer.Reason != "hash mismatch" {
		t.Errorf("second early event %+v", ev)
	}
	o2 := c.track("2")
	c.route(answer("2", false))
	c.route(answer("3", true)) // nobody's yet
	if ev := <-o2.Events; ev.Offer.ID != "2" || ev.Offer.Accepted {
		t.Errorf("offer 2 got %+v", ev)
	}
	c.route(Event{Kind: Lost})
	for _, o := range []*SentOffer{o1, o2} {
		if ev := <-o.Events; ev.Kind != Lost {
			t.Errorf("offer %s got %v, want lost", o.ID, ev.Kind)
		}
	}
	o1.Close()
	c.route(answer("1", true))
	select {
	case ev := <-o1.Events:
		t.Errorf("closed offer got %+v", ev)
	default:
	}
	// At most MaxEarlyAnswers offers' answers are kept early.
	for i := range MaxEarlyAnswers + 10 {
		c.route(answer(fmt.Sprint(100+i), true))
	}
	if len(c.early) != MaxEarlyAnswers {
		t.Errorf("%d early answers kept, want %d", len(c.early), MaxEarlyAnswers)
	}
	// A channel that is full drops, never blocks the reading goroutine.
	o4 := c.track("4")
	for range 2 * offerEvents {
		c.route(answer("4", true))
	}
	if len(o4.Events) != offerEvents {
		t.Errorf("%d events queued, want %d", len(o4.Events), offerEvents)
	}
}

func TestClientReportsLostSession(t *testing.T) {
	m := startMaster(t, "127.0.0.1:0", master.Config{})
	evs := make(chan Event, 16)
	cfg := testCfg(m.addr)
	cfg.OnEvent = func(e Event) { evs <- e }
	c, err := Dial(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The master going away is reported without a query: a sender waiting
	// for an answer to an offer made on that connection must know.
	m.stop(t)
	if ev := waitEvent(t, evs, Lost, nil); ev.Master != m.addr || ev.Err == nil {
		t.Errorf("Lost event %+v", ev)
	}
	c.Close()
}
