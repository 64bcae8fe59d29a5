package masterclient

import (
	"fmt"
	"time"

	"github.com/fxshell/fxsh/netproto/line"
)

// EventKind says what happened.
type EventKind int

// Event kinds.
const (
	Connected     EventKind = iota // a connection to Master is up
	Registered                     // Files are registered on Master
	Refused                        // Master refused the key or the registration (Err)
	Lost                           // the connection to Master ended or could not be made (Err); Retry says when the next try is
	Offered                        // a receiver got a push offer (Offer)
	OfferAnswered                  // a receiver answered our offer (Offer.Accepted, Offer.Reason)
	OfferFinished                  // the receiver of our accepted offer says the push ended (Offer.Reason: why it failed, "" if it succeeded)
)

func (k EventKind) String() string {
	switch k {
	case Connected:
		return "connected"
	case Registered:
		return "registered"
	case Refused:
		return "refused"
	case Lost:
		return "lost"
	case Offered:
		return "offered"
	case OfferAnswered:
		return "answered"
	case OfferFinished:
		return "finished"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is a change a role reports to the shell.
type Event struct {
	Time   time.Time
	Kind   EventKind
	Master string
	Files  int
	// Addr is the address the master listed us under (Registered): what
	// clients will use, e.g. 127.0.0.1:41229 for a socket on [::]:41229.
	Addr  string
	Err   error
	Retry time.Duration
	Offer *Offer
}

// Offer is a push offer: sent by a client, relayed by the master to a
// receiver, answered with ACCEPT or REFUSE.
type Offer struct {
	ID       string
	Name     string // file name, checked with line.CheckName
	Size     int64
	Hash     string
	From     string // UDP address of the file server holding the file
	By       string // the sender as the master names it
	Accepted bool   // OfferAnswered: accepted
	Reason   string // OfferAnswered: why it was refused; OfferFinished: why the push failed ("" = received and verified)
}

// pushEvent turns a line the master sent unasked into an event. Malformed
// offers are dropped (ok false): they cannot be answered safely.
func pushEvent(m line.Msg) (ev Event, ok bool) {
	o := &Offer{ID: m.Value("offer")}
	switch m.Verb {
	case line.VerbOffer:
		o.Name, o.Hash, o.From, o.By = m.Value("name"), m.Value("hash"), m.Value("from"), m.Value("by")
		size, err := m.Int("size")
		if err != nil || size < 0 || o.ID == "" || line.CheckName(o.Name, 0) != nil || line.CheckHash(o.Hash) != nil {
			return Event{}, false
		}
		o.Size = size
		return Event{Kind: Offered, Offer: o}, true
	case line.VerbAccept:
		o.Accepted = true
		return Event{Kind: OfferAnswered, Offer: o}, true
	case line.VerbRefuse:
		o.Reason = m.Value("reason")
		return Event{Kind: OfferAnswered, Offer: o}, true
	case line.VerbDone:
		o.Accepted = true
		o.Reason = m.Value("error")
		return Event{Kind: OfferFinished, Offer: o}, true
	}
	return Event{}, false
}
