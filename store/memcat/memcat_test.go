package memcat

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/catalogtest"
)

func TestCatalogSuite(t *testing.T) {
	catalogtest.Run(t, catalogtest.Factory{
		New: func(t *testing.T, ttl time.Duration) store.Catalog { return New(ttl) },
	})
}

// clock is a hand-moved time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestExpiryWithClock(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Unix(1e9, 0)}
	c := New(30*time.Second, WithClock(clk.now))
	f := catalogtest.File("a.txt", "a")
	for _, addr := range []string{"h:1", "h:2", "h:3"} {
		if err := c.Register(ctx, store.Server{Addr: addr}, []store.File{f}); err != nil {
			t.Fatal(err)
		}
		clk.add(5 * time.Second)
	}
	// h:1 at 0 s, h:2 at 5 s, h:3 at 10 s; now 15 s.
	if err := c.Heartbeat(ctx, "h:1"); err != nil { // h:1 now due at 45 s
		t.Fatal(err)
	}
	steps := []struct {
		to   time.Duration
		want []string
	}{
		{34 * time.Second, []string{"h:1", "h:2", "h:3"}},
		{35 * time.Second, []string{"h:1", "h:3"}}, // exactly ttl after h:2's registration
		{40 * time.Second, []string{"h:1"}},
		{44 * time.Second, []string{"h:1"}},
		{45 * time.Second, nil},
	}
	start := time.Unix(1e9, 0)
	for _, s := range steps {
		clk.mu.Lock()
		clk.t = start.Add(s.to)
		clk.mu.Unlock()
		ss, err := c.Servers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range ss {
			got = append(got, s.Addr)
		}
		if !slices.Equal(got, s.want) {
			t.Errorf("at %v: servers %q, want %q", s.to, got, s.want)
		}
		es, _ := c.Files(ctx, "")
		if wantFiles := min(len(s.want), 1); len(es) != wantFiles {
			t.Errorf("at %v: %d entries, want %d", s.to, len(es), wantFiles)
		} else if len(es) == 1 && !slices.Equal(es[0].Servers, s.want) {
			t.Errorf("at %v: entry servers %q, want %q", s.to, es[0].Servers, s.want)
		}
	}
	if err := c.Heartbeat(ctx, "h:1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Heartbeat after expiry = %v, want ErrNotFound", err)
	}
}

func TestNoExpiry(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	c := New(0, WithClock(clk.now))
	if err := c.Register(context.Background(), store.Server{Addr: "h:1"}, nil); err != nil {
		t.Fatal(err)
	}
	clk.add(1000 * time.Hour)
	if ss, _ := c.Servers(context.Background()); len(ss) != 1 {
		t.Errorf("ttl 0 expired a registration")
	}
}

func TestRegisterErrors(t *testing.T) {
	c := New(time.Minute)
	ctx := context.Background()
	bad := catalogtest.File("a", "a")
	bad.Hash = "blake3:XYZ"
	tests := []struct {
		name  string
		srv   store.Server
		files []store.File
	}{
		{"no addr", store.Server{}, nil},
		{"bad role", store.Server{Addr: "h:1", Role: "boss"}, nil},
		{"bad hash", store.Server{Addr: "h:1"}, []store.File{bad}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.Register(ctx, tt.srv, tt.files); err == nil {
				t.Error("Register succeeded")
			}
		})
	}
	if ss, _ := c.Servers(ctx); len(ss) != 0 {
		t.Errorf("failed registrations left %+v", ss)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Search(cctx, "a", 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Search with canceled ctx = %v", err)
	}
	c.Close()
	if _, err := c.Servers(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Servers after Close = %v, want ErrUnavailable", err)
	}
}

// TestIndexShrinks checks that removed entries leave nothing behind.
func TestIndexShrinks(t *testing.T) {
	c := New(time.Minute)
	ctx := context.Background()
	var fs []store.File
	for i := range 5000 {
		fs = append(fs, catalogtest.File(string(rune('a'+i%26))+"/file"+string(rune('0'+i%10))+"-"+time.Duration(i).String(), "x"))
	}
	if err := c.Register(ctx, store.Server{Addr: "h:1"}, fs); err != nil {
		t.Fatal(err)
	}
	if len(c.idx.grams) == 0 {
		t.Fatal("index empty after register")
	}
	if err := c.Unregister(ctx, "h:1"); err != nil {
		t.Fatal(err)
	}
	if len(c.idx.grams) != 0 || len(c.byKey) != 0 || len(c.free) != len(c.entries) {
		t.Errorf("after unregister: %d grams, %d keys, %d/%d slots free", len(c.idx.grams), len(c.byKey), len(c.free), len(c.entries))
	}
}

func TestGlobLiterals(t *testing.T) {
	tests := []struct {
		glob string
		want []string
	}{
		{"*.TXT", []string{".txt"}},
		{"docs/*/a?b", []string{"docs/", "/a", "b"}},
		{"[ab]c[^x]d", []string{"c", "d"}},
		{`\*x\[`, []string{"*x["}},
		{"*", nil},
	}
	for _, tt := range tests {
		if got := globLiterals(tt.glob); !slices.Equal(got, tt.want) {
			t.Errorf("globLiterals(%q) = %q, want %q", tt.glob, got, tt.want)
		}
	}
}
