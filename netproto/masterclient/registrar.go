package masterclient

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/store"
)

// Registration is what a Registrar keeps registered.
type Registration struct {
	Addr  string       // UDP HOST:PORT; an empty or unspecified HOST means "the address the master sees"
	Role  string       // store.RoleServer (default) or store.RoleReceiver
	Name  string       // optional display name (receive --as NAME)
	Files []store.File // a server's files (at least one); a receiver's are empty
}

func (r *Registration) check() error {
	if _, _, err := net.SplitHostPort(r.Addr); err != nil {
		return fmt.Errorf("address %q: want HOST:PORT (HOST may be empty)", r.Addr)
	}
	switch r.Role {
	case "":
		r.Role = store.RoleServer
	case store.RoleServer, store.RoleReceiver:
	default:
		return fmt.Errorf("unknown role %q", r.Role)
	}
	return checkFiles(r.Role, r.Files)
}

func checkFiles(role string, files []store.File) error {
	switch {
	case role == store.RoleServer && len(files) == 0:
		return errors.New("nothing to share: no files")
	case role == store.RoleReceiver && len(files) > 0:
		return errors.New("a receiver registers no files")
	case len(files) > line.MaxFiles:
		return fmt.Errorf("%d files: at most %d can be registered", len(files), line.MaxFiles)
	}
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		if err := line.CheckFile(f, 0); err != nil {
			return fmt.Errorf("file %q: %w", f.Name, err)
		}
		if seen[f.Name] {
			return fmt.Errorf("file %q listed twice", f.Name)
		}
		seen[f.Name] = true
	}
	return nil
}

// Registrar keeps one registration alive on the masters.
type Registrar struct {
	cfg    Config
	update chan struct{} // a new file list is waiting (capacity 1)
	proofs chan string   // the latest ownership token from the UDP socket (capacity 1)
	stop   chan struct{} // closed by Close
	done   chan struct{} // closed when the loop ends

	mu       sync.Mutex // guards the fields below
	reg      Registration
	sess     *session
	master   string
	ready    chan struct{} // closed at the first registration or refusal
	readyErr error         // the refusal, if that came first
	byeCtx   context.Context
}

// StartRegistrar checks reg and starts keeping it registered until Close
// or until ctx ends (then without BYE: the master drops the registration
// when the connection closes). It returns at once; WaitRegistered waits
// for the first registration.
func StartRegistrar(ctx context.Context, cfg Config, reg Registration) (*Registrar, error) {
	cfg = cfg.withDefaults()
	if err := reg.check(); err != nil {
		return nil, fmt.Errorf("registration: %w", err)
	}
	if len(cfg.Masters) == 0 {
		return nil, ErrNoMasters
	}
	r := &Registrar{cfg: cfg, reg: reg, update: make(chan struct{}, 1), proofs: make(chan string, 1), stop: make(chan struct{}),
		done: make(chan struct{}), ready: make(chan struct{})}
	go r.run(ctx)
	return r, nil
}

// Update replaces the file list and registers it at once (or at the next
// connection).
func (r *Registrar) Update(files []store.File) error {
	r.mu.Lock()
	if err := checkFiles(r.reg.Role, files); err != nil {
		r.mu.Unlock()
		return fmt.Errorf("registration: %w", err)
	}
	r.reg.Files = files
	r.mu.Unlock()
	select {
	case r.update <- struct{}{}:
	default:
	}
	return nil
}

// ProofWait bounds how long a registration refused with ERR 409 (the
// address is held by another connection) waits for the master's token to
// reach the UDP socket before it gives up until the next attempt.
const ProofWait = 3 * time.Second

// Proof passes on a master's ownership token that reached the peer's UDP
// socket (transfer.ServerConfig.OnProof): a registration refused because
// another connection holds the address is sent again with proof=TOKEN.
// It never blocks; a newer token replaces an unused one.
func (r *Registrar) Proof(token string) {
	for {
		select {
		case r.proofs <- token:
			return
		default:
		}
		select {
		case <-r.proofs:
		default:
		}
	}
}

// WaitRegistered waits until the registration is first recorded (nil),
// refused (the *line.Error, or a key error), or ctx ends.
func (r *Registrar) WaitRegistered(ctx context.Context) error {
	select {
	case <-r.ready:
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.readyErr
	case <-ctx.Done():
		return ctx.Err()
	case <-r.done:
		return errors.New("registrar stopped")
	}
}

// Master returns the master currently holding the registration, or "".
func (r *Registrar) Master() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.master
}

// Accept and Refuse answer a push offer a receiver got (Offered event).
func (r *Registrar) Accept(ctx context.Context, id string) error {
	return r.answer(ctx, line.NewMsg(line.VerbAccept).With("offer", id))
}

// Refuse refuses a push offer, telling the sender why.
func (r *Registrar) Refuse(ctx context.Context, id, reason string) error {
	m := line.NewMsg(line.VerbRefuse).With("offer", id)
	if reason != "" {
		m = m.With("reason", reason)
	}
	return r.answer(ctx, m)
}

// Finish tells the sender of an accepted offer that the push ended: failure
// is "" when the file was received and verified, else why it failed.
func (r *Registrar) Finish(ctx context.Context, id, failure string) error {
	m := line.NewMsg(line.VerbDone).With("offer", id)
	if failure != "" {
		m = m.With("error", failure)
	}
	return r.answer(ctx, m)
}

func (r *Registrar) answer(ctx context.Context, m line.Msg) error {
	r.mu.Lock()
	s := r.sess
	r.mu.Unlock()
	if s == nil {
		return errors.New("not connected to a master")
	}
	return s.roundTrip(ctx, []line.Msg{m}, func(next func() (line.Msg, error)) error {
		_, err := expect(next, line.VerbOK)
		return err
	})
}

// Close says BYE, so the master drops the registration at once, and stops.
func (r *Registrar) Close(ctx context.Context) error {
	r.mu.Lock()
	select {
	case <-r.stop:
	default:
		r.byeCtx = ctx
		close(r.stop)
	}
	r.mu.Unlock()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Registrar) setReady(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.ready:
	default:
		r.readyErr = err
		close(r.ready)
	}
}

// backoff returns the delay before attempt n (0-based): exponential from
// BackoffMin to BackoffMax, each drawn between half and all of it so that
// peers that lost the same master do not come back in step.
func (r *Registrar) backoff(n int) time.Duration {
	d := r.cfg.BackoffMin << min(n, 20)
	if d <= 0 || d > r.cfg.BackoffMax {
		d = r.cfg.BackoffMax
	}
	return d/2 + rand.N(d/2+1)
}

func (r *Registrar) run(ctx context.Context) {
	defer close(r.done)
	idx, attempt := 0, 0
	for {
		r.mu.Lock()
		role := r.reg.Role
		r.mu.Unlock()
		s, i, err := connect(ctx, &r.cfg, idx, role, func(m line.Msg) {
			if ev, ok := pushEvent(m); ok {
				r.cfg.event(ev)
			}
		})
		if err == nil {
			idx = i
			r.cfg.event(Event{Kind: Connected, Master: s.master})
			var registered bool
			registered, err = r.serve(ctx, s)
			if registered {
				attempt = 0
			}
			if err == nil { // stopped
				return
			}
			// Start the next round at the next master if this one refused.
			var refusal *line.Error
			if errors.As(err, &refusal) {
				idx = (idx + 1) % len(r.cfg.Masters)
			}
		}
		if ctx.Err() != nil {
			return
		}
		var refusal *line.Error
		if errors.As(err, &refusal) && refusal.Code != line.CodeConflict || errors.Is(err, ErrKeyRequired) || errors.Is(err, ErrMasterNotProven) {
			// (A 409 is not final: the address is held by a connection
			// the master has not yet noticed dead, or the proof was lost;
			// the next attempt may succeed.)
			r.setReady(err)
		}
		wait := r.backoff(attempt)
		attempt++
		master := ""
		if s != nil {
			master = s.master
		}
		r.cfg.event(Event{Kind: Lost, Master: master, Err: err, Retry: wait})
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.stop:
			t.Stop()
			return
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// serve registers on s and keeps the registration alive until s fails
// (the error), or Close or ctx (nil).
func (r *Registrar) serve(ctx context.Context, s *session) (registered bool, err error) {
	defer s.close()
	r.mu.Lock()
	r.sess, r.master = s, s.master
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.sess, r.master = nil, ""
		r.mu.Unlock()
	}()
	lost := make(chan struct{}, 1)
	go s.keepalive(func() {
		select {
		case lost <- struct{}{}:
		default:
		}
	})
	register := func() error {
		err := r.register(ctx, s)
		var refusal *line.Error
		if errors.As(err, &refusal) {
			r.cfg.event(Event{Kind: Refused, Master: s.master, Err: err})
		}
		return err
	}
	if err := register(); err != nil {
		return false, err
	}
	for {
		select {
		case <-r.stop:
			r.mu.Lock()
			bctx := r.byeCtx
			r.mu.Unlock()
			s.roundTrip(bctx, []line.Msg{line.NewMsg(line.VerbBye)}, func(next func() (line.Msg, error)) error {
				_, err := expect(next, line.VerbBye)
				return err
			})
			return true, nil
		case <-ctx.Done():
			return true, nil
		case <-s.done:
			return true, s.reason()
		case <-r.update:
		case <-lost:
		}
		if err := register(); err != nil {
			return true, err
		}
	}
}

func (r *Registrar) register(ctx context.Context, s *session) error {
	r.mu.Lock()
	reg := r.reg
	r.mu.Unlock()
	if len(reg.Files) > s.maxFiles {
		return line.Errorf(line.CodeTooMany, "%d files: master %s takes at most %d", len(reg.Files), s.master, s.maxFiles)
	}
	var listed string // the address the master lists us under (OK addr=)
	send := func(proof string) error {
		msgs := make([]line.Msg, 0, len(reg.Files)+2)
		head := line.NewMsg(line.VerbRegister).With("addr", reg.Addr).WithInt("n", int64(len(reg.Files)))
		if reg.Name != "" {
			head = head.With("name", reg.Name)
		}
		if proof != "" {
			head = head.With("proof", proof)
		}
		msgs = append(msgs, head)
		for _, f := range reg.Files {
			msgs = append(msgs, line.FileMsg(store.Entry{File: f}))
		}
		msgs = append(msgs, line.NewMsg(line.VerbEnd))
		rctx, cancel := context.WithTimeout(ctx, s.ttl)
		defer cancel()
		return s.roundTrip(rctx, msgs, func(next func() (line.Msg, error)) error {
			ok, err := expect(next, line.VerbOK)
			listed = ok.Value("addr")
			return err
		})
	}
	select { // a token from an earlier challenge is stale
	case <-r.proofs:
	default:
	}
	err := send("")
	var refusal *line.Error
	if errors.As(err, &refusal) && refusal.Code == line.CodeConflict {
		// Another connection holds the address (our own old one, not yet
		// noticed dead, or a squatter): the master sent a token to it,
		// which the UDP socket passes on.
		t := time.NewTimer(ProofWait)
		select {
		case tok := <-r.proofs:
			t.Stop()
			err = send(tok)
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	if err != nil {
		return err
	}
	r.cfg.event(Event{Kind: Registered, Master: s.master, Files: len(reg.Files), Addr: listed})
	r.setReady(nil)
	return nil
}
