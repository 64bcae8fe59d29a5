package shell

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/fxshell/fxsh/netproto/download"
	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/netproto/seed"
	"github.com/fxshell/fxsh/netproto/transfer"
	"github.com/fxshell/fxsh/store/partfile"
	"github.com/fxshell/fxsh/store/tree"
)

// Seeding: while a download runs it offers its checked groups to other
// downloaders, and after it finishes the whole file while the shell runs
// (netproto/seed); `set seed off` stops it. Each download also asks the
// master for such partial sources and takes them on (download.Request.Peers).

// seeding prepares req to seed and to use peers, when `set seed` is on.
// finished reports the end of the download: it keeps the offer (saying so
// once) or withdraws it.
func (s *Shell) seeding(req *download.Request) (finished func(err error)) {
	if !s.set.On("seed") || req.WholeFile || !tree.Checkable(req.Entry.Size) {
		return func(error) {}
	}
	e := req.Entry
	groups := tree.NewHave(e.Size)
	req.Groups = groups
	var offer *seed.Offer
	req.Opened = func(part *partfile.Part, tr *tree.Tree) {
		if tr == nil {
			return
		}
		sd, err := s.seeder()
		if err != nil {
			s.warn("seeding %s: %v", e.Name, err)
			return
		}
		f, err := part.OpenReader()
		if err != nil {
			s.warn("seeding %s: %v", e.Name, err)
			return
		}
		if offer, err = sd.Offer(e.Hash, e.Name, e.Size, tr, groups, f); err != nil {
			s.warn("seeding %s: %v", e.Name, err)
		}
	}
	req.Peers = func(ctx context.Context) ([]transfer.Peer, error) {
		cl, err := s.client(ctx)
		if err != nil {
			return nil, err
		}
		srcs, err := cl.Sources(ctx, e.Hash)
		if err != nil {
			return nil, err
		}
		var out []transfer.Peer
		for _, p := range srcs {
			rs, err := line.ParseHave(p.Have, tree.Groups(e.Size))
			if err != nil {
				continue
			}
			gs := make([][2]int, len(rs))
			for i, r := range rs {
				gs[i] = [2]int{r.First, r.End}
			}
			out = append(out, transfer.Peer{Addr: p.Addr, Groups: gs})
		}
		return out, nil
	}
	return func(err error) {
		if offer == nil {
			return
		}
		if err != nil || !s.set.On("seed") {
			offer.Withdraw()
			return
		}
		groups.SetAll()
		if s.set.Get("format") == "json" {
			return // machine-readable output: no chatter (status shows it)
		}
		s.notify(fmt.Sprintf("seeding %s to others while this shell runs (set seed off: stop)", e.Name))
	}
}

// seeder returns the shell's seeding role, starting it on first use.
func (s *Shell) seeder() (*seed.Seeder, error) {
	s.mu.Lock()
	sd := s.seed
	s.mu.Unlock()
	if sd != nil {
		return sd, nil
	}
	cl, err := s.client(s.ctx)
	if err != nil {
		return nil, err
	}
	s.seedMu.Lock() // one start at a time
	defer s.seedMu.Unlock()
	s.mu.Lock()
	sd = s.seed
	s.mu.Unlock()
	if sd != nil {
		return sd, nil
	}
	sd, err = seed.Start(seed.Config{
		Master:   cl,
		Key:      s.opts.Key,
		Impair:   s.impair,
		Counters: s.counters,
		Trace:    s.traceUDP("seed"),
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.seed = sd
	s.mu.Unlock()
	return sd, nil
}

// stopSeeding withdraws every offer and closes the seeding role.
func (s *Shell) stopSeeding() {
	s.mu.Lock()
	sd := s.seed
	s.seed = nil
	s.mu.Unlock()
	if sd != nil {
		sd.Close()
	}
}

// seedStatus describes what is seeded, for status ("" for nothing).
func (s *Shell) seedStatus() string {
	s.mu.Lock()
	sd := s.seed
	s.mu.Unlock()
	if sd == nil {
		return ""
	}
	offers := sd.Offers()
	if len(offers) == 0 {
		return ""
	}
	sort.Slice(offers, func(i, j int) bool { return offers[i].Name < offers[j].Name })
	var parts []string
	for _, o := range offers {
		if o.Groups == o.Total {
			parts = append(parts, fmt.Sprintf("%s (%s, whole)", o.Name, humanBytes(o.Size)))
		} else {
			parts = append(parts, fmt.Sprintf("%s (%d of %d groups checked)", o.Name, o.Groups, o.Total))
		}
	}
	st := sd.Stats()
	return fmt.Sprintf("udp %s: %s; %s sent to peers", sd.Addr(), strings.Join(parts, ", "), humanBytes(st.BytesSent))
}
