package master

import (
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/store"
)

// A push (issue 8) goes through the master because only the master knows
// where a receiver is: the sender says OFFER, the master gives it an id
// and relays it on the receiver's connection, and relays the receiver's
// ACCEPT or REFUSE back. The file itself then moves over UDP, pulled by the
// receiver from the sender's file server (from=). An accepted offer stays
// in the table until the receiver says how the download ended (DONE, which
// the master relays too), or until one side's connection ends: that is
// how a sender learns that its push finished or that the receiver is gone.

type offer struct {
	id       string
	from, to *session
	timer    *time.Timer // the answer's deadline; stopped once answered
	accepted bool        // ACCEPT came: waiting for DONE
}

// offerTable holds the offers waiting for an answer (guarded by Server.mu).
type offerTable struct {
	byID map[string]*offer
	seq  uint64
}

// offer handles OFFER to= name= size= hash= from=: it checks the offer,
// files it with the receiver named by to= and relays it there.
func (ss *session) offer(m line.Msg) error {
	s := ss.s
	to, f, from, perr := ss.parseOffer(m)
	if perr != nil {
		return ss.sendErr(perr)
	}

	s.mu.Lock()
	o, by, ferr := s.fileOffer(ss, to)
	s.mu.Unlock()
	if ferr != nil {
		return ss.sendErr(ferr)
	}

	// The sender gets its id before the receiver can answer.
	if err := ss.send(line.NewMsg(line.VerbOK).With("offer", o.id)); err != nil {
		return err
	}
	relay := line.NewMsg(line.VerbOffer).With("offer", o.id).With("name", f.Name).
		WithInt("size", f.Size).With("hash", f.Hash).With("from", from).With("by", by)
	if o.to.send(relay) != nil {
		s.endOffer(o.id, line.ReasonReceiverGone)
	}
	return nil
}

// parseOffer reads and checks an OFFER's fields; the error is the one to
// send back.
func (ss *session) parseOffer(m line.Msg) (to string, f store.Entry, from string, _ *line.Error) {
	to, err := m.Require("to")
	if err == nil {
		f.Name, err = m.Require("name")
	}
	if err == nil {
		f.Size, err = m.Int("size")
	}
	if err == nil {
		f.Hash, err = m.Require("hash")
	}
	if err == nil {
		err = line.CheckName(f.Name, ss.s.cfg.MaxName)
	}
	if err == nil {
		err = line.CheckHash(f.Hash)
	}
	if err != nil {
		return "", f, "", line.Errorf(line.CodeSyntax, "OFFER: %v", err)
	}
	if f.Size < 0 || f.Size > line.MaxSize {
		return "", f, "", line.Errorf(line.CodeSyntax, "OFFER: size %d: want 0 to 2^50", f.Size)
	}
	from, err = ss.registrationAddr(m.Value("from"))
	if err != nil {
		return "", f, "", line.Errorf(line.CodeSyntax, "OFFER from=: %v", err)
	}
	// The receiver pulls from from=: it must be the sender's own address,
	// or an OFFER would make receivers send REQUESTs to a third party
	// that never spoke to anyone (reflection).
	if h, _, _ := net.SplitHostPort(from); !sameIP(h, ss.ip) {
		return "", f, "", line.Errorf(line.CodeState, "OFFER from=%s: a push comes from your own address (%s), not another host's", from, ss.ip)
	}
	return to, f, from, nil
}

// fileOffer finds the receiver to (an address or a registered name) and
// files a new offer from ss to it, within MaxOffers waiting per sender. by
// names the sender as the master knows it: its registered name with its
// address (a name is first come, first served, so the address is what a
// receiver can trust), else its address. The caller holds s.mu.
func (s *Server) fileOffer(ss *session, to string) (o *offer, by string, _ *line.Error) {
	var rx *session
	for addr, o := range s.owners {
		if o.role == store.RoleReceiver && (addr == to || o.name == to) {
			rx = o
			break
		}
	}
	if rx == nil {
		return nil, "", line.Errorf(line.CodeNotFound, "no receiver %q on this master", to)
	}
	pending := 0
	for _, o := range s.offers.byID {
		if o.from == ss {
			pending++
		}
	}
	if pending >= MaxOffers {
		return nil, "", line.Errorf(line.CodeState, "%d offers already waiting for an answer or a result", pending)
	}
	s.offers.seq++
	o = &offer{id: strconv.FormatUint(s.offers.seq, 10), from: ss, to: rx}
	s.offers.byID[o.id] = o
	o.timer = time.AfterFunc(OfferTimeout, func() { s.endOffer(o.id, line.ReasonNoAnswer) })
	by = ss.addr
	if by == "" {
		by = ss.remote
	}
	if ss.name != "" && s.owners[ss.addr] == ss {
		by = ss.name + "@" + by
	}
	return o, by, nil
}

// answer handles ACCEPT or REFUSE offer=ID [reason=] from the receiver.
func (ss *session) answer(m line.Msg) error {
	s := ss.s
	id := m.Value("offer")
	s.mu.Lock()
	o := s.offers.byID[id]
	if o == nil || o.to != ss || o.accepted {
		s.mu.Unlock()
		return ss.sendErr(line.Errorf(line.CodeNotFound, "no offer %q waiting for this receiver", id))
	}
	o.timer.Stop()
	if m.Verb == line.VerbAccept {
		o.accepted = true
	} else {
		delete(s.offers.byID, id)
	}
	s.mu.Unlock()
	if err := ss.send(line.NewMsg(line.VerbOK).With("offer", id)); err != nil {
		return err
	}
	relay := line.NewMsg(m.Verb).With("offer", id)
	if m.Verb == line.VerbRefuse {
		reason := m.Value("reason")
		if reason == "" {
			reason = "refused"
		}
		relay = relay.With("reason", reason)
	}
	o.from.send(relay)
	return nil
}

// finish handles DONE offer=ID [error=TEXT] from the receiver of an accepted
// offer: the push ended (error= says why it failed) and the sender is told.
func (ss *session) finish(m line.Msg) error {
	s := ss.s
	id := m.Value("offer")
	s.mu.Lock()
	o := s.offers.byID[id]
	switch {
	case o == nil || o.to != ss:
		s.mu.Unlock()
		return ss.sendErr(line.Errorf(line.CodeNotFound, "no offer %q accepted by this receiver", id))
	case !o.accepted:
		s.mu.Unlock()
		return ss.sendErr(line.Errorf(line.CodeState, "offer %q is not accepted yet: ACCEPT or REFUSE it", id))
	}
	delete(s.offers.byID, id)
	s.mu.Unlock()
	if err := ss.send(line.NewMsg(line.VerbOK).With("offer", id)); err != nil {
		return err
	}
	relay := line.NewMsg(line.VerbDone).With("offer", id)
	if e := m.Value("error"); e != "" {
		relay = relay.With("error", e)
	}
	o.from.send(relay)
	return nil
}

// endOffer ends an offer on the receiver's behalf: a waiting one is
// refused (REFUSE reason=), an accepted one fails (DONE error=).
func (s *Server) endOffer(id, reason string) {
	s.mu.Lock()
	o := s.offers.byID[id]
	delete(s.offers.byID, id)
	s.mu.Unlock()
	if o == nil {
		return
	}
	o.timer.Stop()
	if o.accepted {
		o.from.send(line.NewMsg(line.VerbDone).With("offer", id).With("error", reason))
		return
	}
	o.from.send(line.NewMsg(line.VerbRefuse).With("offer", id).With("reason", reason))
}

// dropOffers forgets the offers this session sent and ends those it was
// sent (refused if waiting, failed if accepted).
func (ss *session) dropOffers() {
	s := ss.s
	var refused []string
	s.mu.Lock()
	for id, o := range s.offers.byID {
		switch {
		case o.from == ss:
			o.timer.Stop()
			delete(s.offers.byID, id)
		case o.to == ss:
			refused = append(refused, id)
		}
	}
	s.mu.Unlock()
	for _, id := range refused {
		s.endOffer(id, line.ReasonReceiverGone)
	}
}

// sameIP reports whether two IP strings are one address (an IPv4 address
// and its IPv6-mapped form are).
func sameIP(a, b string) bool {
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return x.Unmap() == y.Unmap()
}
