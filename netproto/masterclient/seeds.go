package masterclient

import (
	"context"

	"github.com/fxshell/fxsh/netproto/line"
)

// PartialSource is a peer offering some groups of a file (SOURCES).
type PartialSource struct {
	Addr string // UDP HOST:PORT
	Have string // have list (line.ParseHave)
}

// MaxPartialSources caps the records a SOURCES answer may hold.
const MaxPartialSources = 64

// Seed offers the checked groups (have, a have list) of the file with this
// hash and size as a partial source serving on addr (UDP; empty host: the
// master fills in ours). Call it again as have grows.
func (c *Client) Seed(ctx context.Context, hash string, size int64, addr, have string) error {
	req := line.NewMsg("SEED").With("hash", hash).WithInt("size", size).With("addr", addr).With("have", have)
	return c.do(ctx, func(s *session) error {
		return s.roundTrip(ctx, []line.Msg{req}, func(next func() (line.Msg, error)) error {
			_, err := expect(next, line.VerbOK)
			return err
		})
	})
}

// Unseed withdraws a Seed.
func (c *Client) Unseed(ctx context.Context, hash string) error {
	req := line.NewMsg("UNSEED").With("hash", hash)
	return c.do(ctx, func(s *session) error {
		return s.roundTrip(ctx, []line.Msg{req}, func(next func() (line.Msg, error)) error {
			_, err := expect(next, line.VerbOK)
			return err
		})
	})
}

// Sources returns the partial sources of a hash that other peers offer.
func (c *Client) Sources(ctx context.Context, hash string) ([]PartialSource, error) {
	var out []PartialSource
	err := c.do(ctx, func(s *session) error {
		out = nil
		return s.roundTrip(ctx, []line.Msg{line.NewMsg("SOURCES").With("hash", hash)}, func(next func() (line.Msg, error)) error {
			n, _, err := readHead(next, MaxPartialSources)
			if err != nil || n == 0 {
				return err
			}
			for range n {
				m, err := next()
				if err != nil {
					return err
				}
				if m.Verb != "S" || m.Value("addr") == "" {
					return &line.ProtocolError{Reason: "expected S addr=… have=…", Input: m.String()}
				}
				out = append(out, PartialSource{Addr: m.Value("addr"), Have: m.Value("have")})
			}
			_, err = expect(next, line.VerbEnd)
			return err
		})
	})
	return out, err
}
