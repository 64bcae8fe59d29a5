package push

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/fxshell/fxsh/netproto/chunk"
	"github.com/fxshell/fxsh/netproto/download"
	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/netproto/master"
	"github.com/fxshell/fxsh/netproto/masterclient"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/partfile"
)

// Limits of a receiver.
const (
	// MaxWaitingOffers bounds the offers a receiver keeps waiting for
	// Accept or Refuse: the master bounds each sender (master.MaxOffers),
	// not how many senders there are. Offers past it are refused.
	MaxWaitingOffers = 64
	// MaxWaitingPerSender bounds the offers from one sender (by the host
	// of its from= address, which the master checks is the sender's own
	// IP) waiting at once: one peer cannot fill MaxWaitingOffers and lock
	// everyone else out. Past it the offer is refused.
	MaxWaitingPerSender = 4
	// SenderOfferRate and SenderOfferBurst shape a token bucket of offers
	// per sender host. An offer past it is refused ("slow down") while
	// the receiver's refusal budget (RefuseRate, RefuseBurst) lasts, and
	// dropped without an answer after that (the master refuses it for the
	// sender after OfferTimeout): answering every offer of a flood made
	// the receiver's own connection pass the master's request rate (100 a
	// second) and be closed with ERR 429, which 1,000 relayed offers did
	// before issue 18.
	SenderOfferRate  = 1.0 // offers a second
	SenderOfferBurst = 8
	RefuseRate       = 20.0 // refusals a second for offers over their sender's rate
	RefuseBurst      = 40
	// MaxSenderBuckets bounds the buckets kept (the oldest is forgotten).
	MaxSenderBuckets = 1024
	// AnswerTimeout bounds telling the master an answer or a result.
	AnswerTimeout = 10 * time.Second
)

// ReceiverConfig configures a Receiver.
type ReceiverConfig struct {
	Dir     string   // where received files land (never outside it)
	Name    string   // the name the master lists the receiver under ("" for none)
	Masters []string // HOST:PORT of the masters, tried in order
	Key     string   // shared secret ("" = open network)

	// AutoAccept is asked for each offer that passes the checks: true
	// accepts it at once (OfferAccepted; the caller then Pulls it), false
	// keeps it waiting for Accept or Refuse (OfferWaiting). nil: every
	// offer waits.
	AutoAccept func() bool
	// LineTrace sees every line to and from the master; OnEvent is told
	// what happens. Both are called from the receiver's goroutines and
	// must not block for long.
	LineTrace func(line.TraceEvent)
	OnEvent   func(Event)
}

// EventKind says what happened to a Receiver.
type EventKind int

// Receiver events.
const (
	Registered    EventKind = iota // registered (again) on Master
	MasterLost                     // the master connection ended (Err); it is retried
	MasterRefused                  // the master refused the registration (Err)
	OfferWaiting                   // Offer waits for Accept or Refuse
	OfferAccepted                  // Offer was accepted automatically: Pull it
	OfferRefused                   // Offer was refused by the receiver's checks (Reason)
	OfferDropped                   // Offer came faster than its sender's rate and was dropped unanswered
	AnswerFailed                   // telling the master about Offer failed (Err)
	FinishFailed                   // Offer's file arrived, but telling the sender failed (Err)
)

// Event is something a Receiver reports.
type Event struct {
	Kind   EventKind
	Master string
	Err    error
	Offer  *Offer
	Reason string
}

// Pending is an offer waiting for Accept or Refuse.
type Pending struct {
	*Offer
	Arrived time.Time
}

// Receiver is a running receive role.
type Receiver struct {
	cfg  ReceiverConfig
	ctx  context.Context // the registration's lifetime: answers are sent under it
	sock net.PacketConn  // reserves the UDP address the receiver registers under
	reg  *masterclient.Registrar
	// ready is closed once reg is set: an offer can arrive before
	// StartRegistrar has returned it.
	ready chan struct{}

	mu       sync.Mutex          // protects the fields below
	buckets  map[string]*bucket  // offer rate per sender host
	refusals bucket              // answers for offers over their sender's rate
	waiting  map[string]*Pending // offers waiting for an answer, by id
	active   map[string]*Offer   // accepted offers not yet pulled to the end, by id
	seen     int                 // offers handled since the receiver started
	newOffer chan struct{}       // closed (and replaced) when an offer has been handled
	down     bool                // master lost (reported once until back)
	closed   bool
}

// StartReceiver registers a receiver with the master and keeps the
// registration alive until Close or the end of ctx. It does not wait for
// the master: see WaitRegistered.
func StartReceiver(ctx context.Context, cfg ReceiverConfig) (*Receiver, error) {
	if st, err := os.Stat(cfg.Dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("receive folder %s is not a folder", cfg.Dir)
	}
	sock, err := net.ListenPacket("udp", ":0")
	if err != nil {
		return nil, fmt.Errorf("opening a udp socket: %w", err)
	}
	r := &Receiver{cfg: cfg, ctx: ctx, sock: sock,
		waiting: map[string]*Pending{}, active: map[string]*Offer{}, buckets: map[string]*bucket{},
		refusals: bucket{tokens: RefuseBurst, last: time.Now()}, newOffer: make(chan struct{}), ready: make(chan struct{})}
	mcfg := masterclient.Config{Masters: cfg.Masters, Trace: cfg.LineTrace, OnEvent: r.event}
	if cfg.Key != "" {
		mcfg.Key = []byte(cfg.Key)
	}
	reg, err := masterclient.StartRegistrar(ctx, mcfg, masterclient.Registration{
		Addr: sock.LocalAddr().String(), Role: store.RoleReceiver, Name: cfg.Name,
	})
	if err != nil {
		close(r.ready) // no offer can come
		sock.Close()
		return nil, err
	}
	r.reg = reg
	close(r.ready)
	go r.answerProofs()
	return r, nil
}

// answerProofs reads the receiver's UDP socket until it closes and passes
// the master's ownership challenges to the registrar: a receiver whose
// old connection the master has not yet noticed dead proves its address
// and is back at once (PROTOCOL.md 1.3) instead of after the TTL.
func (r *Receiver) answerProofs() {
	buf := make([]byte, 512)
	for fails := 0; ; {
		n, _, err := r.sock.ReadFrom(buf)
		if err != nil {
			// Closed, or failing for good (ICMP errors surface as reads
			// on some systems; a run of them means the socket is broken).
			if fails++; errors.Is(err, net.ErrClosed) || fails > 100 {
				return
			}
			continue
		}
		fails = 0
		if tok, ok := chunk.ParseProof(buf[:n]); ok {
			r.reg.Proof(tok)
		}
	}
}

// WaitRegistered waits until the master lists the receiver.
func (r *Receiver) WaitRegistered(ctx context.Context) error { return r.reg.WaitRegistered(ctx) }

// Addr is the UDP address the receiver registers under.
func (r *Receiver) Addr() string { return r.sock.LocalAddr().String() }

// Dir is the receive folder.
func (r *Receiver) Dir() string { return r.cfg.Dir }

// Name is the name the master lists the receiver under.
func (r *Receiver) Name() string { return r.cfg.Name }

// Master is the master holding the registration, or "".
func (r *Receiver) Master() string { return r.reg.Master() }

// Counts says how many offers wait for an answer and how many accepted
// files are being received.
func (r *Receiver) Counts() (waiting, active int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked(time.Now())
	return len(r.waiting), len(r.active)
}

// Handled returns how many offers the receiver has handled (refused,
// accepted or put waiting) and a channel closed when the next one is.
func (r *Receiver) Handled() (int, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen, r.newOffer
}

// Close stops receiving: it says BYE (the master refuses the waiting
// offers and tells the senders; an accepted push still running fails with
// "receiver gone") and frees the address. Pulls still running should be
// cancelled first.
func (r *Receiver) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	err := r.reg.Close(ctx)
	r.sock.Close()
	return err
}

func (r *Receiver) emit(ev Event) {
	if r.cfg.OnEvent != nil {
		r.cfg.OnEvent(ev)
	}
}

// event handles the registrar's events. It runs on the registrar's reading
// goroutine, so answering an offer (a round trip on that connection) is
// done on a goroutine of its own.
func (r *Receiver) event(ev masterclient.Event) {
	switch ev.Kind {
	case masterclient.Offered:
		go r.offered(ev.Offer)
	case masterclient.Registered:
		r.mu.Lock()
		back := r.down
		r.down = false
		r.mu.Unlock()
		if back {
			r.emit(Event{Kind: Registered, Master: ev.Master})
		}
	case masterclient.Lost:
		r.mu.Lock()
		first := !r.down && !r.closed
		r.down = true
		r.mu.Unlock()
		if first {
			r.emit(Event{Kind: MasterLost, Master: ev.Master, Err: ev.Err})
		}
	case masterclient.Refused:
		r.emit(Event{Kind: MasterRefused, Master: ev.Master, Err: ev.Err})
	}
}

// handled counts an offer as handled and wakes those waiting for one.
func (r *Receiver) handled() {
	r.mu.Lock()
	r.seen++
	close(r.newOffer)
	r.newOffer = make(chan struct{})
	r.mu.Unlock()
}

// offered decides what to do with a new offer.
func (r *Receiver) offered(o *Offer) {
	defer r.handled()
	<-r.ready
	ctx, cancel := context.WithTimeout(r.ctx, AnswerTimeout)
	defer cancel()
	host := senderHost(o)
	r.mu.Lock()
	r.pruneLocked(time.Now()) // stale offers do not count against the caps
	ok := r.allowLocked(host, time.Now())
	answer := !ok && r.refusals.take(RefuseRate, RefuseBurst, time.Now())
	r.mu.Unlock()
	if !ok {
		why := fmt.Sprintf("more than %d offers from %s at once", SenderOfferBurst, host)
		if !answer {
			r.emit(Event{Kind: OfferDropped, Offer: o, Reason: why})
			return
		}
		r.reg.Refuse(ctx, o.ID, "too many offers: slow down")
		r.emit(Event{Kind: OfferRefused, Offer: o, Reason: why})
		return
	}
	if reason := r.check(o); reason != "" {
		if err := r.reg.Refuse(ctx, o.ID, reason); err != nil {
			r.emit(Event{Kind: AnswerFailed, Offer: o, Err: fmt.Errorf("refusing offer %s: %w", o.ID, err)})
		}
		r.emit(Event{Kind: OfferRefused, Offer: o, Reason: reason})
		return
	}
	if r.cfg.AutoAccept != nil && r.cfg.AutoAccept() {
		if err := r.accept(ctx, o); err != nil {
			r.emit(Event{Kind: AnswerFailed, Offer: o, Err: fmt.Errorf("accepting offer %s: %w", o.ID, err)})
			return
		}
		r.emit(Event{Kind: OfferAccepted, Offer: o})
		return
	}
	r.mu.Lock()
	fromHost := 0
	for _, p := range r.waiting {
		if senderHost(p.Offer) == host {
			fromHost++
		}
	}
	if fromHost >= MaxWaitingPerSender || len(r.waiting) >= MaxWaitingOffers {
		r.mu.Unlock()
		why := fmt.Sprintf("%d offers already waiting", MaxWaitingOffers)
		if fromHost >= MaxWaitingPerSender {
			why = fmt.Sprintf("%d offers from %s already waiting", fromHost, host)
		}
		r.reg.Refuse(ctx, o.ID, "too many offers waiting")
		r.emit(Event{Kind: OfferRefused, Offer: o, Reason: why})
		return
	}
	r.waiting[o.ID] = &Pending{Offer: o, Arrived: time.Now()}
	r.mu.Unlock()
	r.emit(Event{Kind: OfferWaiting, Offer: o})
}

// bucket is a token bucket of offers from one sender host.
type bucket struct {
	tokens float64
	last   time.Time
}

// allowLocked takes an offer from host's bucket. r.mu is held.
func (r *Receiver) allowLocked(host string, now time.Time) bool {
	b := r.buckets[host]
	if b == nil {
		if len(r.buckets) >= MaxSenderBuckets {
			var oldest string
			for h, x := range r.buckets {
				if oldest == "" || x.last.Before(r.buckets[oldest].last) {
					oldest = h
				}
			}
			delete(r.buckets, oldest)
		}
		b = &bucket{tokens: SenderOfferBurst, last: now}
		r.buckets[host] = b
	}
	return b.take(SenderOfferRate, SenderOfferBurst, now)
}

// take refills the bucket at rate up to burst and takes one token.
func (b *bucket) take(rate, burst float64, now time.Time) bool {
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// senderHost is the host an offer comes from: the IP of its from=
// address, which the master checks is the sender's own.
func senderHost(o *Offer) string {
	if h, _, err := net.SplitHostPort(o.From); err == nil {
		return h
	}
	return o.From
}

// check returns why an offer cannot be taken, or "": a name this machine
// cannot hold safely, a name already there or being received, or a file
// larger than the free space of the folder. It runs before any ACCEPT, so
// nothing is pulled for an offer it refuses.
func (r *Receiver) check(o *Offer) string {
	if err := partfile.CheckName(o.Name); err != nil {
		return fmt.Sprintf("unsafe name: %v", err)
	}
	if free, ok := freeSpace(r.cfg.Dir); ok && o.Size > 0 && uint64(o.Size) > free {
		return fmt.Sprintf("not enough space: %d bytes offered, %d free", o.Size, free)
	}
	if _, err := os.Lstat(filepath.Join(r.cfg.Dir, filepath.FromSlash(o.Name))); err == nil {
		return fmt.Sprintf("%s already exists in the receiver's folder", o.Name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return "no longer receiving"
	}
	for id, a := range r.active {
		if a.Name == o.Name {
			return fmt.Sprintf("already receiving %s (offer %s)", o.Name, id)
		}
	}
	return ""
}

// accept answers ACCEPT and counts the offer as being received.
func (r *Receiver) accept(ctx context.Context, o *Offer) error {
	if err := r.reg.Accept(ctx, o.ID); err != nil {
		var le *line.Error
		if errors.As(err, &le) && le.Code == line.CodeNotFound {
			return fmt.Errorf("offer %s is no longer waiting (the sender left, or it was not answered within %v)",
				o.ID, master.OfferTimeout)
		}
		return err
	}
	r.mu.Lock()
	r.active[o.ID] = o
	r.mu.Unlock()
	return nil
}

// take removes a waiting offer, or says why there is none.
func (r *Receiver) take(id string) (*Offer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked(time.Now())
	p := r.waiting[id]
	if p == nil {
		if _, ok := r.active[id]; ok {
			return nil, fmt.Errorf("offer %s is already accepted", id)
		}
		return nil, fmt.Errorf("no offer %s waiting (offers lists them)", id)
	}
	delete(r.waiting, id)
	return p.Offer, nil
}

// Accept accepts a waiting offer; the caller then Pulls it. An offer
// that can no longer be taken (its name arrived meanwhile) is refused.
func (r *Receiver) Accept(ctx context.Context, id string) (*Offer, error) {
	o, err := r.take(id)
	if err != nil {
		return nil, err
	}
	if reason := r.check(o); reason != "" {
		r.reg.Refuse(ctx, id, reason)
		return nil, fmt.Errorf("offer %s: %s; refused", id, reason)
	}
	if err := r.accept(ctx, o); err != nil {
		return nil, err
	}
	return o, nil
}

// Refuse refuses a waiting offer; the sender sees reason.
func (r *Receiver) Refuse(ctx context.Context, id, reason string) (*Offer, error) {
	o, err := r.take(id)
	if err != nil {
		return nil, err
	}
	if err := r.reg.Refuse(ctx, o.ID, reason); err != nil {
		return o, fmt.Errorf("offer %s: %w", o.ID, err)
	}
	return o, nil
}

// pruneLocked forgets offers the master has refused for want of an answer.
func (r *Receiver) pruneLocked(now time.Time) {
	for id, p := range r.waiting {
		if now.Sub(p.Arrived) > master.OfferTimeout {
			delete(r.waiting, id)
		}
	}
}

// Waiting lists the offers waiting for an answer, by id (they are decimal
// counters: numerically).
func (r *Receiver) Waiting() []Pending {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked(time.Now())
	out := make([]Pending, 0, len(r.waiting))
	for _, p := range r.waiting {
		out = append(out, *p)
	}
	sort.Slice(out, func(a, b int) bool {
		x, y := out[a].ID, out[b].ID
		if len(x) != len(y) {
			return len(x) < len(y)
		}
		return x < y
	})
	return out
}

// Pull downloads an accepted offer into the receive folder through the
// download role and tells the sender how it ended. req carries the
// download settings (chunk size, key, timeout, impairment, counters,
// trace, progress); its Entry and Dir are the offer's and the receiver's.
func (r *Receiver) Pull(ctx context.Context, o *Offer, req download.Request) (download.Result, error) {
	defer func() {
		r.mu.Lock()
		delete(r.active, o.ID)
		r.mu.Unlock()
	}()
	req.Entry = store.Entry{File: store.File{Name: o.Name, Size: o.Size, Hash: o.Hash}, Servers: []string{o.From}}
	req.Dir = r.cfg.Dir
	req.Overwrite = false
	res, err := download.Get(ctx, req)
	failure := ""
	switch {
	case err == nil:
	case ctx.Err() != nil:
		failure = "cancelled by the receiver"
	default:
		failure = oneLine(err.Error())
	}
	fctx, cancel := context.WithTimeout(context.Background(), AnswerTimeout)
	ferr := r.reg.Finish(fctx, o.ID, failure)
	cancel()
	if ferr != nil && err == nil {
		r.emit(Event{Kind: FinishFailed, Offer: o, Err: ferr})
	}
	if err != nil {
		// A push is not resumed (a new offer is a new download): a
		// failed one leaves no hidden partial file behind.
		if derr := partfile.Discard(r.cfg.Dir, o.Name); derr != nil {
			err = fmt.Errorf("%w (and removing the partial file: %v)", err, derr)
		}
		return res, fmt.Errorf("pushed by %s: %w", offeredBy(o), err)
	}
	return res, nil
}
