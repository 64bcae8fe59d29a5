package masterclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/fxshell/fxsh/netproto/line"
)

// session is one handshaken connection to a master. One goroutine reads:
// replies go to the request waiting for them (one request at a time), and
// OFFER, ACCEPT, REFUSE and DONE, which a master sends unasked, go to onPush.
type session struct {
	nc                         net.Conn
	master                     string
	hb                         time.Duration // heartbeat and limits announced in HI
	ttl                        time.Duration
	maxLine, maxName, maxFiles int

	r      *line.Reader
	wmu    sync.Mutex // guards w
	w      *line.Writer
	reqMu  sync.Mutex // one request at a time
	onPush func(line.Msg)

	replies chan line.Msg
	quit    chan struct{} // closed by close
	done    chan struct{} // closed when the reader ends; err says why
	err     error
	once    sync.Once
}

// errMasterClosed is the reason of a session the master ended.
var errMasterClosed = errors.New("master closed the connection")

func dialSession(ctx context.Context, cfg *Config, master, role string, onPush func(line.Msg)) (*session, error) {
	dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	nc, err := cfg.Dial(dctx, master)
	if err != nil {
		return nil, fmt.Errorf("dialing master %s: %w", master, err)
	}
	s := &session{nc: nc, master: master, onPush: onPush,
		replies: make(chan line.Msg), quit: make(chan struct{}), done: make(chan struct{})}
	s.r = line.NewReader(nc, line.MaxLine)
	s.w = line.NewWriter(nc, line.MaxLine)
	s.r.Trace, s.w.Trace = line.TraceHooks(cfg.Trace, nc.LocalAddr().String(), nc.RemoteAddr().String())
	// The handshake is bounded like the master bounds it, and by ctx.
	deadline := time.Now().Add(line.HelloTimeout)
	if d, ok := dctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	err = s.handshake(cfg, role)
	stop()
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("master %s: %w", master, err)
	}
	nc.SetDeadline(time.Time{})
	go s.readLoop()
	return s, nil
}

func (s *session) handshake(cfg *Config, role string) error {
	hello := line.NewMsg(line.VerbHello, line.Version).With("role", role)
	cnonce := ""
	if cfg.Key != nil {
		cnonce = line.NewNonce()
		hello = hello.With("nonce", cnonce)
	}
	if err := s.send(hello); err != nil {
		return err
	}
	m, err := s.r.ReadMsg()
	if err != nil {
		return err
	}
	if m.Verb == line.VerbAuth {
		if cfg.Key == nil {
			return ErrKeyRequired
		}
		mac := line.ClientMAC(cfg.Key, role, m.Value("nonce"), cnonce)
		if err := s.send(line.NewMsg(line.VerbAuth).With("mac", mac)); err != nil {
			return err
		}
		if m2, err := s.r.ReadMsg(); err != nil {
			return err
		} else if m2.Verb == line.VerbHi && !line.EqualMAC(m2.Value("mac"), line.MasterMAC(cfg.Key, m.Value("nonce"), cnonce)) {
			return ErrMasterNotProven
		} else {
			m = m2
		}
	} else if m.Verb == line.VerbHi && cfg.Key != nil {
		// A master without our key could be anyone: do not register
		// with it or believe its answers.
		return ErrMasterNotProven
	}
	switch m.Verb {
	case line.VerbErr:
		return asError(m)
	case line.VerbHi:
	default:
		return &line.ProtocolError{Reason: "expected HI", Input: m.String()}
	}
	if m.Arg(0) != line.Version {
		return &line.ProtocolError{Reason: "unsupported version", Input: m.Arg(0)}
	}
	secs := func(key string, def time.Duration) (time.Duration, error) {
		v, ok := m.Get(key)
		if !ok {
			return def, nil
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 86400 {
			return 0, &line.ProtocolError{Reason: "bad " + key, Input: v}
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	var err1, err2 error
	s.hb, err1 = secs("hb", line.DefaultHeartbeat)
	s.ttl, err2 = secs("ttl", line.DefaultTTL)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	limit := func(key string, def int64) int {
		n, err := m.OptInt(key, def)
		if err != nil || n <= 0 {
			return int(def)
		}
		return int(min(n, def*16))
	}
	s.maxLine = limit("maxline", line.MaxLine)
	s.maxName = limit("maxname", line.MaxName)
	s.maxFiles = limit("maxfiles", line.MaxFiles)
	return nil
}

// asError returns the *line.Error an ERR line carries.
func asError(m line.Msg) error {
	e, err := line.ParseError(m)
	if err != nil {
		return err
	}
	return e
}

func (s *session) send(msgs ...line.Msg) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for _, m := range msgs {
		if err := s.w.WriteMsg(m); err != nil {
			return err
		}
	}
	return s.w.Flush()
}

func (s *session) readLoop() {
	defer close(s.done)
	for {
		m, err := s.r.ReadMsg()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || isEOF(err) {
				err = errMasterClosed
			}
			s.fail(err)
			return
		}
		switch m.Verb {
		case line.VerbOffer, line.VerbAccept, line.VerbRefuse, line.VerbDone:
			if s.onPush != nil {
				s.onPush(m)
			}
			continue
		}
		select {
		case s.replies <- m:
		case <-s.quit:
			return
		}
	}
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func (s *session) fail(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.quit)
		s.nc.Close()
	})
}

func (s *session) close() { s.fail(errSessionClosed) }

var errSessionClosed = errors.New("session closed")

// alive reports whether the session has not failed.
func (s *session) alive() bool {
	select {
	case <-s.quit:
		return false
	default:
		return true
	}
}

// roundTrip sends req and hands read the reply lines one by one. A failure
// other than a refusal (*line.Error) leaves the stream out of step, so it
// ends the session.
func (s *session) roundTrip(ctx context.Context, req []line.Msg, read func(next func() (line.Msg, error)) error) error {
	s.reqMu.Lock()
	defer s.reqMu.Unlock()
	if !s.alive() {
		return s.reason()
	}
	stop := context.AfterFunc(ctx, func() { s.nc.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	s.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := s.send(req...); err != nil {
		s.fail(err)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("master %s: %w", s.master, err)
	}
	next := func() (line.Msg, error) {
		select {
		case m := <-s.replies:
			return m, nil
		case <-s.quit:
			return line.Msg{}, s.reason()
		case <-ctx.Done():
			s.close()
			return line.Msg{}, ctx.Err()
		}
	}
	err := read(next)
	var refusal *line.Error
	if err != nil && !errors.As(err, &refusal) {
		s.fail(err)
	}
	return err
}

func (s *session) reason() error {
	select {
	case <-s.quit:
		return fmt.Errorf("master %s: %w", s.master, s.err)
	default:
		return nil
	}
}

// expect reads one reply line and checks its verb; ERR is a *line.Error.
func expect(next func() (line.Msg, error), verb string) (line.Msg, error) {
	m, err := next()
	if err != nil {
		return m, err
	}
	if m.Verb == line.VerbErr {
		return m, asError(m)
	}
	if m.Verb != verb {
		return m, &line.ProtocolError{Reason: "expected " + verb, Input: m.String()}
	}
	return m, nil
}

// ping sends PING and waits for PONG.
func (s *session) ping(ctx context.Context) error {
	return s.roundTrip(ctx, []line.Msg{line.NewMsg(line.VerbPing)}, func(next func() (line.Msg, error)) error {
		_, err := expect(next, line.VerbPong)
		return err
	})
}

// keepalive pings every hb until the session ends. A 404 (the master lost
// the registration) is reported to lost; other failures end the session.
func (s *session) keepalive(lost func()) {
	t := time.NewTicker(s.hb)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.ttl)
		err := s.ping(ctx)
		cancel()
		var refusal *line.Error
		switch {
		case errors.As(err, &refusal) && refusal.Code == line.CodeNotFound && lost != nil:
			lost()
		case errors.As(err, &refusal) && refusal.Code == line.CodeUnavailable:
			// The master's catalog is down, not the connection: keep it
			// and try again at the next beat.
		case err != nil:
			s.fail(err)
			return
		}
	}
}
