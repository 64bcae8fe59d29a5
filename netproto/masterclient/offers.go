package masterclient

import (
	"context"
	"time"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/store"
)

// Limits of the offers a Client matches to their answers.
const (
	// MaxEarlyAnswers bounds the answers a client keeps for offers whose
	// id Offer has not returned yet (the master's ACCEPT can reach the
	// reading goroutine before Offer has read its OK); they are kept for
	// EarlyAnswerTTL at most. Past it, an unmatched answer is dropped.
	MaxEarlyAnswers = 256
	EarlyAnswerTTL  = time.Minute
	// offerEvents is the room of a SentOffer's channel: an answer, a
	// result and a loss are all one offer can get.
	offerEvents = 4
)

// SentOffer is a push offer this client made: the receiver's answer
// (OfferAnswered), how an accepted push ended (OfferFinished), or the
// loss of the master connection the offer was made on (Lost; nothing
// follows it) arrive on Events. Close it when no more events are wanted.
type SentOffer struct {
	ID     string
	Events <-chan Event

	c  *Client
	ch chan Event
}

// Close stops routing events to o.
func (o *SentOffer) Close() {
	o.c.offerMu.Lock()
	if o.c.offers[o.ID] == o {
		delete(o.c.offers, o.ID)
	}
	o.c.offerMu.Unlock()
}

func (o *SentOffer) deliver(ev Event) {
	select {
	case o.ch <- ev:
	default: // full: the offer has had its answer, result and loss
	}
}

type earlyAnswer struct {
	at  time.Time
	evs []Event
}

// Offer asks the master to relay a push offer of f to the receiver to (an
// address or a name from Peers); from is the UDP address of the file
// server that will serve f. The receiver's answer, and later the result,
// come on the returned offer's Events (and to Config.OnEvent).
func (c *Client) Offer(ctx context.Context, to string, f store.File, from string) (*SentOffer, error) {
	req := line.NewMsg(line.VerbOffer).With("to", to).With("name", f.Name).
		WithInt("size", f.Size).With("hash", f.Hash).With("from", from)
	var id string
	err := c.do(ctx, func(s *session) error {
		return s.roundTrip(ctx, []line.Msg{req}, func(next func() (line.Msg, error)) error {
			m, err := expect(next, line.VerbOK)
			id = m.Value("offer")
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	return c.track(id), nil
}

// track starts routing the events of offer id, first those that came early.
func (c *Client) track(id string) *SentOffer {
	ch := make(chan Event, offerEvents)
	o := &SentOffer{ID: id, Events: ch, c: c, ch: ch}
	c.offerMu.Lock()
	defer c.offerMu.Unlock()
	if c.offers == nil {
		c.offers = map[string]*SentOffer{}
	}
	c.offers[id] = o
	for _, ev := range c.early[id].evs {
		o.deliver(ev)
	}
	delete(c.early, id)
	return o
}

// route hands an answer or a result to the offer it belongs to, keeping
// it for a while if Offer has not returned that offer yet; a lost
// session fails every offer. It runs on the reading goroutine and never
// blocks.
func (c *Client) route(ev Event) {
	c.offerMu.Lock()
	defer c.offerMu.Unlock()
	if ev.Kind == Lost {
		for _, o := range c.offers {
			o.deliver(ev)
		}
		return
	}
	if ev.Offer == nil || ev.Kind != OfferAnswered && ev.Kind != OfferFinished {
		return
	}
	if o := c.offers[ev.Offer.ID]; o != nil {
		o.deliver(ev)
		return
	}
	now := time.Now()
	for id, e := range c.early {
		if now.Sub(e.at) > EarlyAnswerTTL {
			delete(c.early, id)
		}
	}
	if c.early == nil {
		c.early = map[string]earlyAnswer{}
	}
	if e, ok := c.early[ev.Offer.ID]; ok || len(c.early) < MaxEarlyAnswers {
		e.at = now
		e.evs = append(e.evs, ev)
		c.early[ev.Offer.ID] = e
	}
}
