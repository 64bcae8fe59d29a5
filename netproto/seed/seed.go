// Package seed is the seeding role ("students serve students"): a shell
// that downloads a file offers the 64 KiB groups it has checked against the
// file's tree to other downloaders while it downloads, and the whole file
// after, while it runs.
//
// Seeder serves every offered file over one UDP socket (transfer.Server:
// the chunk protocol, sealed with the shared key when there is one, so
// only key holders fetch) and keeps each one announced to the master
// (SEED with a have list, netproto/master/seeds.go). Offer adds a file and
// returns the Offer that withdraws it. A peer is served only bytes of
// checked groups (a transfer.PartialFile: others are answered "not yet").
// Roles never print: Offers reports what is served, for `status`.
package seed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/fxshell/fxsh/netproto/fileserver"
	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/netproto/transfer"
	"github.com/fxshell/fxsh/store/tree"
)

// Limits and timers.
const (
	// MaxOffers caps the files one shell seeds at once: the master keeps
	// at most that many SEEDs per connection (master.MaxSeedsPerConn).
	MaxOffers = 16
	// MaxPeersServed caps the transfers the seeding server runs at once
	// (each costs a goroutine and up to ~0.5 MiB of records).
	MaxPeersServed = 64
	// AnnounceEvery is how often a growing have list is sent again.
	AnnounceEvery = 200 * time.Millisecond
	// AnnounceRefresh resends an unchanged one (a master that restarted,
	// a connection that was re-made, and the connection's keepalive).
	AnnounceRefresh = 5 * time.Second
)

// ErrTooMany is Offer's error past MaxOffers.
var ErrTooMany = errors.New("seed: too many files seeded at once")

// Master is what a Seeder needs of the master (masterclient.Client).
type Master interface {
	Seed(ctx context.Context, hash string, size int64, addr, have string) error
	Unseed(ctx context.Context, hash string) error
}

// Config configures a Seeder.
type Config struct {
	Master   Master
	Key      string // shared secret ("" = open network)
	UDPAddr  string // "" = ":0"
	Impair   *transfer.Impair
	Counters *transfer.Counters
	Trace    func(transfer.Event)
}

// Seeder is a running seeding role.
type Seeder struct {
	cfg    Config
	udp    *transfer.Server
	port   string
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex // guards offers
	offers map[string]*Offer
}

// Offer is one seeded file.
type Offer struct {
	s      *Seeder
	Hash   string
	Name   string
	Size   int64
	tr     *tree.Tree
	groups *tree.Have
	f      *os.File

	mu       sync.Mutex // guards the fields below
	lastGen  uint64
	lastSent time.Time
	done     bool // withdrawn
}

// Start opens the UDP socket and starts serving and announcing.
func Start(cfg Config) (*Seeder, error) {
	if cfg.UDPAddr == "" {
		cfg.UDPAddr = ":0"
	}
	pc, err := net.ListenPacket("udp", cfg.UDPAddr)
	if err != nil {
		return nil, fmt.Errorf("seed: opening a udp socket: %w", err)
	}
	_, port, _ := net.SplitHostPort(pc.LocalAddr().String())
	s := &Seeder{cfg: cfg, port: port, offers: map[string]*Offer{}}
	s.udp = transfer.NewServer(pc, transfer.ServerConfig{
		Open:         s.open,
		OpenTree:     s.openTree,
		Key:          transfer.UDPKey(cfg.Key),
		MaxTransfers: MaxPeersServed,
		Impair:       cfg.Impair,
		Counters:     cfg.Counters,
		Trace:        cfg.Trace,
	})
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		_ = s.udp.Serve(ctx)
	}()
	go func() {
		defer s.wg.Done()
		s.announce(ctx)
	}()
	return s, nil
}

// Addr is the UDP address the Seeder serves on (":PORT": the master
// fills in the host it sees).
func (s *Seeder) Addr() string { return ":" + s.port }

// Offer starts seeding a file being downloaded: groups is where the
// download records its checked groups (all of them once it is complete),
// f a descriptor of its temporary file (the final file after Finish; the
// Offer closes it). name is for status only.
func (s *Seeder) Offer(hash, name string, size int64, tr *tree.Tree, groups *tree.Have, f *os.File) (*Offer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.offers[hash]; old != nil {
		f.Close()
		return nil, fmt.Errorf("seed: %s is seeded already", name)
	}
	if len(s.offers) >= MaxOffers {
		f.Close()
		return nil, ErrTooMany
	}
	o := &Offer{s: s, Hash: hash, Name: name, Size: size, tr: tr, groups: groups, f: f}
	s.offers[hash] = o
	return o, nil
}

// Withdraw stops seeding the file: the master is told, new requests are
// refused; transfers under way end when they next read.
func (o *Offer) Withdraw() {
	s := o.s
	s.mu.Lock()
	if s.offers[o.Hash] == o {
		delete(s.offers, o.Hash)
	}
	s.mu.Unlock()
	o.mu.Lock()
	if o.done {
		o.mu.Unlock()
		return
	}
	o.done = true
	o.mu.Unlock()
	o.f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.cfg.Master.Unseed(ctx, o.Hash)
}

// Status is what one offer serves, for status.
type Status struct {
	Name          string
	Size          int64
	Groups, Total int
}

// Offers lists what is seeded.
func (s *Seeder) Offers() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Status
	for _, o := range s.offers {
		c, _ := o.groups.Count()
		out = append(out, Status{Name: o.Name, Size: o.Size, Groups: c, Total: o.groups.Len()})
	}
	return out
}

// Stats returns the seeding server's counters.
func (s *Seeder) Stats() transfer.Stats { return s.udp.Stats() }

// Close withdraws every offer and stops serving.
func (s *Seeder) Close() {
	s.mu.Lock()
	var os []*Offer
	for _, o := range s.offers {
		os = append(os, o)
	}
	s.mu.Unlock()
	for _, o := range os {
		o.Withdraw()
	}
	s.cancel()
	s.udp.Close()
	s.wg.Wait()
}

func (s *Seeder) offer(hash string) *Offer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offers[hash]
}

func (s *Seeder) open(hash string) (transfer.File, error) {
	o := s.offer(hash)
	if o == nil {
		return nil, fmt.Errorf("%w: not seeded here", transfer.ErrNotFound)
	}
	return partial{o}, nil
}

func (s *Seeder) openTree(hash string) (transfer.File, error) {
	o := s.offer(hash)
	if o == nil || o.tr == nil {
		return nil, fmt.Errorf("%w: not seeded here", transfer.ErrNotFound)
	}
	return fileserver.TreeFile(o.tr), nil
}

// partial serves the checked groups of an offer (transfer.PartialFile).
type partial struct{ o *Offer }

func (p partial) Size() int64  { return p.o.Size }
func (p partial) Close() error { return nil } // the Offer owns the descriptor
func (p partial) Available(off, end int64) bool {
	return p.o.groups.HasRange(off, end)
}

func (p partial) ReadAt(b []byte, off int64) (int, error) {
	if !p.o.groups.HasRange(off, off+int64(len(b))) {
		return 0, transfer.ErrNotYet
	}
	return p.o.f.ReadAt(b, off)
}

// announce sends each offer's have list to the master as it grows.
func (s *Seeder) announce(ctx context.Context) {
	t := time.NewTicker(AnnounceEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		var os []*Offer
		for _, o := range s.offers {
			os = append(os, o)
		}
		s.mu.Unlock()
		for _, o := range os {
			o.announce(ctx)
		}
	}
}

func (o *Offer) announce(ctx context.Context) {
	count, gen := o.groups.Count()
	o.mu.Lock()
	due := !o.done && count > 0 && (gen != o.lastGen || time.Since(o.lastSent) >= AnnounceRefresh)
	o.mu.Unlock()
	if !due {
		return
	}
	have := string(line.AppendHave(nil, HaveRanges(o.groups), o.groups.Len()))
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := o.s.cfg.Master.Seed(cctx, o.Hash, o.Size, o.s.Addr(), have)
	cancel()
	if err == nil {
		o.mu.Lock()
		o.lastGen, o.lastSent = gen, time.Now()
		o.mu.Unlock()
	}
}

// HaveRanges returns the checked groups as at most line.MaxHaveRanges
// ranges: the first ones, when there are more (a source may offer less
// than it holds, never more).
func HaveRanges(h *tree.Have) []line.GroupRange {
	var rs []line.GroupRange
	n := h.Len()
	size := 0
	for g := 0; g < n && len(rs) < line.MaxHaveRanges && size+24 <= line.MaxHaveBytes; {
		for g < n && !h.Has(g) {
			g++
		}
		if g >= n {
			break
		}
		first := g
		for g < n && h.Has(g) {
			g++
		}
		rs = append(rs, line.GroupRange{First: first, End: g})
		size += 2*len(fmt.Sprint(g)) + 2
	}
	return rs
}
