package shell

// Push commands (issue 8): receive, send, offers, accept, refuse. The roles
// are netproto/push's Receiver and Sender; this file is the command table
// and the receiving side (the pulls run as jobs; what the Receiver reports
// is rendered here), cmd_send.go the sending side.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/fxshell/fxsh/netproto/download"
	"github.com/fxshell/fxsh/netproto/master"
	"github.com/fxshell/fxsh/netproto/push"
	"github.com/fxshell/fxsh/store"
)

func pushCommands() []*cmdSpec {
	offerIDs := func(s *Shell, _ *compCtx) []string {
		r, ok := s.role("receive").(*receiveRole)
		if !ok {
			return nil
		}
		var ids []string
		for _, p := range r.rx.Waiting() {
			ids = append(ids, p.ID)
		}
		return ids
	}
	return []*cmdSpec{
		{
			name: "receive", group: "Transfers", usage: "receive [DIR] [--as NAME] | receive off", maxArgs: 3,
			summary: "accept files that peers push (send) into DIR (default the download folder); off stops",
			detail: "The master lists this shell as a receiver (see peers), under NAME if given (1-32 letters,\n" +
				"digits, . _ -). Each offer (sender, name, size) waits for accept ID or refuse ID (offers lists\n" +
				"them; `set autoaccept on` accepts at once). A file that exists in DIR, an unsafe name or one\n" +
				"larger than the free space is refused before a byte moves; a received file is checked (BLAKE3).",
			example: "receive ~/inbox --as bob",
			run:     cmdReceive,
			complete: func(s *Shell, c *compCtx) []string {
				if len(c.prev) > 0 && c.prev[len(c.prev)-1] == "--as" {
					return nil
				}
				return append(append(localPaths(c.cur), "off"), "--as")
			},
		},
		{
			name: "send", group: "Transfers", usage: "send FILE PEER", minArgs: 2, maxArgs: 2,
			summary: "push FILE to a peer in receive mode (PEER: an address or a name from peers); a background job",
			detail: "fxsh serves the file over UDP and offers it through the master; the job ends when the\n" +
				"receiver has the file (checked) or refused it, or failed, or went away.",
			example: "send notes.pdf bob",
			run:     cmdSend,
			complete: func(s *Shell, c *compCtx) []string {
				if c.argIndex == 0 {
					return localPaths(c.cur)
				}
				return nil
			},
		},
		{
			name: "offers", group: "Transfers", usage: "offers [-w]", maxArgs: 1,
			summary: "files offered to this receiver, waiting for accept or refuse",
			detail:  "-w first waits for a new offer (one no earlier offers -w returned for): a script's way to wait.",
			run:     cmdOffers,
		},
		{
			name: "accept", group: "Transfers", usage: "accept ID...", minArgs: 1, maxArgs: -1,
			summary: "accept offers (see offers): each file is received as a background job",
			run:     cmdAccept, complete: offerIDs,
		},
		{
			name: "refuse", group: "Transfers", usage: "refuse ID [REASON...]", minArgs: 1, maxArgs: -1,
			summary: "refuse an offer; the sender sees REASON",
			example: "refuse 7 no room for it",
			run:     cmdRefuse, complete: offerIDs,
		},
	}
}

// validPeerName reports whether n can be a receiver's name: 1-32 ASCII
// letters, digits, '.', '_' or '-' (never ':', so it is never an address).
func validPeerName(n string) bool {
	if n == "" || len(n) > master.MaxPeerName {
		return false
	}
	for _, c := range []byte(n) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ---- the receiving side ----

// receiveRole is `receive`: the Receiver role and the jobs pulling the
// files it accepted.
type receiveRole struct {
	s  *Shell
	rx *push.Receiver

	mu     sync.Mutex      // protects the fields below
	jobs   map[string]*Job // pulls running, by offer id
	waited int             // offers that offers -w has returned for
	// noted coalesces the notices of offers from one sender host: at
	// most offerNoticeBurst lines per offerNoticeGap, then one line
	// saying how many more came.
	noted map[string]*offerNotices
}

// One sender's offers are announced each up to offerNoticeBurst in
// offerNoticeGap; the rest are counted.
const (
	offerNoticeGap   = 3 * time.Second
	offerNoticeBurst = 3
)

type offerNotices struct {
	last  time.Time // start of the current gap
	shown int       // lines printed in it
	held  int
	timer *time.Timer
}

// noteOffer prints msg for an offer from o's sender, or counts it if that
// sender's last notice is less than offerNoticeGap old; the count is
// printed when the gap ends. So a flood of offers is a few lines, not one
// a offer.
func (r *receiveRole) noteOffer(o *push.Offer, msg string, toErr bool) {
	host := o.From
	if h, _, err := net.SplitHostPort(o.From); err == nil {
		host = h
	}
	now := time.Now()
	r.mu.Lock()
	if r.noted == nil {
		r.noted = map[string]*offerNotices{}
	}
	n := r.noted[host]
	if n != nil && now.Sub(n.last) < offerNoticeGap && n.shown >= offerNoticeBurst {
		n.held++
		if n.timer == nil {
			n.timer = time.AfterFunc(offerNoticeGap-now.Sub(n.last), func() {
				r.mu.Lock()
				held := n.held
				n.held, n.timer, n.last, n.shown = 0, nil, time.Now(), 0
				r.mu.Unlock()
				if held > 0 {
					r.s.notifyErr(fmt.Sprintf("receive: %d more offers from %s (offers lists those waiting)", held, offerBy(o)))
				}
			})
		}
		r.mu.Unlock()
		return
	}
	if n == nil {
		if len(r.noted) >= 256 {
			for h, x := range r.noted {
				if x.timer == nil && now.Sub(x.last) >= offerNoticeGap {
					delete(r.noted, h)
				}
			}
		}
		n = &offerNotices{last: now}
		r.noted[host] = n
	}
	if now.Sub(n.last) >= offerNoticeGap {
		n.last, n.shown = now, 0
	}
	n.shown++
	r.mu.Unlock()
	if toErr {
		r.s.notifyErr(msg)
	} else {
		r.s.notify(msg)
	}
}

func (r *receiveRole) Describe() string {
	as := ""
	if n := r.rx.Name(); n != "" {
		as = " as " + n
	}
	mode := "autoaccept on"
	if !r.s.set.On("autoaccept") {
		mode = "autoaccept off"
	}
	waiting, active := r.rx.Counts()
	return fmt.Sprintf("receiving into %s%s (udp %s, master %s); %s; %d offers waiting, %d files coming",
		r.rx.Dir(), as, r.rx.Addr(), r.rx.Master(), mode, waiting, active)
}

// Close cancels the files being received, then stops the receiver (BYE:
// the master refuses the waiting offers and tells the senders).
func (r *receiveRole) Close(ctx context.Context) error {
	r.mu.Lock()
	var jobs []*Job
	for _, j := range r.jobs {
		jobs = append(jobs, j)
	}
	r.mu.Unlock()
	for _, j := range jobs {
		r.s.jobs.Cancel(j.ID)
	}
	r.s.jobs.Wait(ctx, jobs)
	return r.rx.Close(ctx)
}

func cmdReceive(ctx context.Context, s *Shell, c *call) error {
	pos, f, err := c.flags(map[string]bool{"--as": true})
	if err != nil {
		return err
	}
	if len(pos) == 1 && pos[0] == "off" {
		if _, ok := f["--as"]; ok {
			return errors.New("usage: receive off")
		}
		return stopReceiving(ctx, s)
	}
	if len(pos) > 1 {
		return errors.New("usage: receive [DIR] [--as NAME] | receive off")
	}
	if old, ok := s.role("receive").(*receiveRole); ok {
		return fmt.Errorf("already receiving into %s (receive off first)", old.rx.Dir())
	}
	dir := s.opts.Dir
	if len(pos) == 1 {
		if dir, err = ExpandPath(pos[0]); err != nil {
			return err
		}
	}
	name := f["--as"]
	if _, given := f["--as"]; given && !validPeerName(name) {
		return fmt.Errorf("bad name %q: 1-%d letters, digits, '.', '_' or '-'", name, master.MaxPeerName)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("receive folder: %w", err)
	}
	masters, err := s.resolveMasters(ctx)
	if err != nil {
		return err
	}
	r := &receiveRole{s: s, jobs: map[string]*Job{}}
	// The registration outlives this command: it runs until receive off
	// or the end of the session.
	rx, err := push.StartReceiver(s.ctx, push.ReceiverConfig{
		Dir: dir, Name: name, Masters: masters, Key: s.opts.Key,
		AutoAccept: func() bool { return s.set.On("autoaccept") },
		LineTrace:  s.traceTCP("receive"),
		OnEvent:    r.event,
	})
	if err != nil {
		return err
	}
	r.rx = rx
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	werr := rx.WaitRegistered(wctx)
	cancel()
	if werr != nil && ctx.Err() == nil && !errors.Is(werr, context.DeadlineExceeded) {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		rx.Close(cctx)
		cancel()
		return fmt.Errorf("registering with %s: %w", strings.Join(s.masters(), ","), werr)
	}
	s.addRole("receive", r)
	as := ""
	if name != "" {
		as = " as " + name
	}
	mode := "offers are accepted automatically (set autoaccept off to choose)"
	if !s.set.On("autoaccept") {
		mode = "offers wait for accept ID or refuse ID"
	}
	s.out("receiving into %s%s on udp %s; %s\n", dir, as, rx.Addr(), mode)
	if werr != nil {
		s.warn("master %s not reachable yet; retrying in the background", strings.Join(s.masters(), ","))
	}
	return nil
}

func stopReceiving(ctx context.Context, s *Shell) error {
	r, ok := s.role("receive").(*receiveRole)
	if !ok {
		return errors.New("not receiving")
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := r.Close(cctx)
	s.removeRole("receive")
	if err != nil {
		return fmt.Errorf("stopped, but the master may list this receiver until its timeout: %w", err)
	}
	s.out("stopped receiving\n")
	return nil
}

// offerBy names who offered o.
func offerBy(o *push.Offer) string {
	if o.By != "" {
		return o.By
	}
	return o.From
}

// event renders what the receiver reports, and starts the pull of an
// offer it accepted by itself. It runs on the receiver's goroutines.
func (r *receiveRole) event(ev push.Event) {
	s := r.s
	switch ev.Kind {
	case push.Registered:
		s.notify(fmt.Sprintf("receive: registered again on %s", ev.Master))
	case push.MasterLost:
		s.notifyErr(s.epal.warn.Sprint(fmt.Sprintf("receive: master lost: %v; retrying in the background", ev.Err)))
	case push.MasterRefused:
		s.notifyErr(s.epal.err.Sprint(fmt.Sprintf("receive: master %s refused us: %v", ev.Master, ev.Err)))
	case push.AnswerFailed:
		s.notifyErr(fmt.Sprintf("receive: %v", ev.Err))
	case push.OfferRefused:
		o := ev.Offer
		r.noteOffer(o, s.epal.warn.Sprint(fmt.Sprintf("receive: refused %s (%s) from %s: %s",
			displayName(o.Name), humanBytes(o.Size), offerBy(o), ev.Reason)), true)
	case push.OfferDropped:
		o := ev.Offer
		r.noteOffer(o, s.epal.warn.Sprint(fmt.Sprintf("receive: ignored %s (%s) from %s: %s",
			displayName(o.Name), humanBytes(o.Size), offerBy(o), ev.Reason)), true)
	case push.OfferAccepted:
		o := ev.Offer
		j := r.pull(o)
		s.notify(fmt.Sprintf("receive: accepted %s (%s) from %s: job %d", displayName(o.Name), humanBytes(o.Size), offerBy(o), j.ID))
	case push.OfferWaiting:
		o := ev.Offer
		r.noteOffer(o, fmt.Sprintf("%s offer %s from %s: %s (%s); accept %s or refuse %s", s.pal.hi.Sprint("receive:"),
			o.ID, offerBy(o), displayName(o.Name), humanBytes(o.Size), o.ID, o.ID), false)
	case push.FinishFailed:
		s.notifyErr(s.epal.warn.Sprint(fmt.Sprintf("receive: %s arrived, but telling the sender failed: %v", displayName(ev.Offer.Name), ev.Err)))
	}
}

// pull starts the job that receives an accepted offer.
func (r *receiveRole) pull(o *push.Offer) *Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	j := r.s.jobs.Start("recv", o.Name, false, func(ctx context.Context, j *Job) error {
		defer func() {
			r.mu.Lock()
			delete(r.jobs, o.ID)
			r.mu.Unlock()
		}()
		req := download.Request{Entry: store.Entry{File: store.File{Name: o.Name, Size: o.Size, Hash: o.Hash}, Servers: []string{o.From}}}
		return downloadError(r.s.download(ctx, j, "recv", req, func(ctx context.Context, req download.Request) (download.Result, error) {
			return r.rx.Pull(ctx, o, req)
		}))
	})
	j.SetTotal(o.Size)
	r.jobs[o.ID] = j
	return j
}

func receiving(s *Shell) (*receiveRole, error) {
	r, ok := s.role("receive").(*receiveRole)
	if !ok {
		return nil, errors.New("not receiving (start with receive [DIR])")
	}
	return r, nil
}

func cmdOffers(ctx context.Context, s *Shell, c *call) error {
	_, f, err := c.flags(map[string]bool{"-w": false})
	if err != nil {
		return err
	}
	r, err := receiving(s)
	if err != nil {
		return err
	}
	if _, ok := f["-w"]; ok {
		for {
			seen, next := r.rx.Handled()
			r.mu.Lock()
			if seen > r.waited {
				r.waited = seen
				r.mu.Unlock()
				break
			}
			r.mu.Unlock()
			select {
			case <-next:
			case <-ctx.Done():
				return errors.New("interrupted")
			}
		}
	}
	waiting := r.rx.Waiting()
	if len(waiting) == 0 {
		s.out("no offers waiting\n")
		return nil
	}
	now := time.Now()
	rows := [][]string{{"ID", "FROM", "NAME", "SIZE", "HASH", "WAITING"}}
	for _, o := range waiting {
		rows = append(rows, []string{o.ID, offerBy(o.Offer), displayName(o.Name), humanBytes(o.Size), shortHash(o.Hash),
			humanDuration(now.Sub(o.Arrived).Truncate(time.Second))})
	}
	s.out("%s", table(s.pal, rows, 3))
	return nil
}

func cmdAccept(ctx context.Context, s *Shell, c *call) error {
	r, err := receiving(s)
	if err != nil {
		return err
	}
	var errs []string
	for _, id := range c.args {
		o, err := r.rx.Accept(ctx, id)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		j := r.pull(o)
		s.out("job %d: receiving %s (%s) from %s\n", j.ID, displayName(o.Name), humanBytes(o.Size), o.By)
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func cmdRefuse(ctx context.Context, s *Shell, c *call) error {
	r, err := receiving(s)
	if err != nil {
		return err
	}
	reason := strings.Join(c.args[1:], " ")
	if reason == "" {
		reason = "refused by the receiver"
	}
	o, err := r.rx.Refuse(ctx, c.args[0], reason)
	if err != nil {
		return err
	}
	s.out("refused %s from %s\n", displayName(o.Name), o.By)
	return nil
}
