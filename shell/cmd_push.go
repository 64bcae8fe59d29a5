package shell

// Push to a peer (issue 8). A receiver (`receive`) registers with the master
// as role receiver; a sender (`send`) serves the file from a small UDP file
// server of its own (pushServer) and offers it through the master; the
// receiver accepts (automatically, or with `accept`) and pulls the file with
// the same download role as `get`, then tells the sender how it ended
// (DONE, relayed by the master). The sender's job ends with that result.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fxshell/fxsh/netproto/download"
	"github.com/fxshell/fxsh/netproto/fileserver"
	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/netproto/master"
	"github.com/fxshell/fxsh/netproto/masterclient"
	"github.com/fxshell/fxsh/netproto/transfer"
	"github.com/fxshell/fxsh/store"
)

// Limits of the push commands.
const (
	// MaxWaitingOffers bounds the offers a receiver keeps waiting for
	// accept or refuse: the master bounds each sender (16), not how many
	// senders there are. Offers past it are refused.
	MaxWaitingOffers = 64
	// MaxEarlyAnswers bounds the answers a sender keeps for offers whose id
	// it has not learnt yet (an answer can overtake the reply to OFFER
	// inside this process); they are kept for earlyAnswerTTL at most.
	MaxEarlyAnswers = 256
	earlyAnswerTTL  = time.Minute
	// MaxPushTransfers bounds the transfers the push server tracks for
	// the senders' progress bars; past it a transfer goes untracked.
	MaxPushTransfers = 1024
	// maxFailureText bounds the failure a receiver reports to the sender.
	maxFailureText = 200
	// answerTimeout bounds telling the master an answer or a result.
	answerTimeout = 10 * time.Second
)

func init() { areaCommands = append(areaCommands, pushCommands) }

func pushCommands() []*cmdSpec {
	offerIDs := func(s *Shell, _ *compCtx) []string {
		if r, ok := s.role("receive").(*receiveRole); ok {
			return r.waitingIDs()
		}
		return nil
	}
	return []*cmdSpec{
		{
			name: "receive", group: "Transfers", usage: "receive [DIR] [--as NAME] | receive off", maxArgs: 3,
			summary: "accept files that peers push (send) into DIR (default the download folder); off stops",
			detail: "The master lists this shell as a receiver (see peers), under NAME if given (1-32 letters,\n" +
				"digits, . _ -). Offers are accepted at once while `set autoaccept` is on; with it off they\n" +
				"wait for accept ID or refuse ID (offers lists them). A file that already exists in DIR is\n" +
				"refused; a received file is checked (BLAKE3) before it takes its name.",
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

// oneLine makes an error fit a protocol field and a job line.
func oneLine(err error) string {
	t := strings.Join(strings.Fields(err.Error()), " ")
	if len(t) > maxFailureText {
		t = t[:maxFailureText] + "…"
	}
	return t
}

// ---- the receiving side ----

// receiveRole is `receive`: a registration as receiver, the offers waiting
// for an answer and the files being received.
type receiveRole struct {
	s    *Shell
	dir  string
	name string
	sock net.PacketConn // reserves the UDP address the receiver registers under
	reg  *masterclient.Registrar

	mu       sync.Mutex // protects the fields below
	waiting  map[string]*masterclient.Offer
	arrived  map[string]time.Time
	active   map[string]*Job // accepted offers being received, by offer id
	seen     int             // offers handled since receive started
	waited   int             // offers that offers -w has returned for
	newOffer chan struct{}   // closed (and replaced) when an offer has been handled
	down     bool            // master lost (reported once until back)
	closed   bool
}

func (r *receiveRole) Describe() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	as := ""
	if r.name != "" {
		as = " as " + r.name
	}
	mode := "autoaccept on"
	if !r.s.set.On("autoaccept") {
		mode = "autoaccept off"
	}
	return fmt.Sprintf("receiving into %s%s (udp %s, master %s); %s; %d offers waiting, %d files coming",
		r.dir, as, r.sock.LocalAddr(), r.reg.Master(), mode, len(r.waiting), len(r.active))
}

// Close cancels the files being received, says BYE (the master refuses the
// waiting offers and tells the senders) and frees the address.
func (r *receiveRole) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	var jobs []*Job
	for _, j := range r.active {
		jobs = append(jobs, j)
	}
	r.mu.Unlock()
	for _, j := range jobs {
		r.s.jobs.Cancel(j.ID)
	}
	r.s.jobs.Wait(ctx, jobs)
	err := r.reg.Close(ctx)
	r.sock.Close()
	return err
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
		return fmt.Errorf("already receiving into %s (receive off first)", old.dir)
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
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("receive folder %s is not a folder", dir)
	}
	masters, err := s.resolveMasters(ctx)
	if err != nil {
		return err
	}
	sock, err := net.ListenPacket("udp", ":0")
	if err != nil {
		return fmt.Errorf("opening a udp socket: %w", err)
	}
	r := &receiveRole{s: s, dir: dir, name: name, sock: sock,
		waiting: map[string]*masterclient.Offer{}, arrived: map[string]time.Time{},
		active: map[string]*Job{}, newOffer: make(chan struct{})}
	cfg := masterclient.Config{
		Masters: masters,
		Trace:   s.traceTCP("receive"),
		OnEvent: r.event,
	}
	if s.opts.Key != "" {
		cfg.Key = []byte(s.opts.Key)
	}
	// The registration outlives this command: it runs until receive off
	// or the end of the session.
	reg, err := masterclient.StartRegistrar(s.ctx, cfg, masterclient.Registration{
		Addr: sock.LocalAddr().String(), Role: store.RoleReceiver, Name: name,
	})
	if err != nil {
		sock.Close()
		return err
	}
	r.reg = reg
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	werr := reg.WaitRegistered(wctx)
	cancel()
	if werr != nil && ctx.Err() == nil && !errors.Is(werr, context.DeadlineExceeded) {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		reg.Close(cctx)
		cancel()
		sock.Close()
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
	s.out("receiving into %s%s on udp %s; %s\n", dir, as, sock.LocalAddr(), mode)
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

// event handles the registrar's events. It runs on the registrar's reading
// goroutine, so answering an offer (a round trip on that connection) is
// done on a goroutine of its own.
func (r *receiveRole) event(ev masterclient.Event) {
	s := r.s
	switch ev.Kind {
	case masterclient.Offered:
		go r.offered(ev.Offer)
	case masterclient.Registered:
		r.mu.Lock()
		back := r.down
		r.down = false
		r.mu.Unlock()
		if back {
			s.notify(fmt.Sprintf("receive: registered again on %s", ev.Master))
		}
	case masterclient.Lost:
		r.mu.Lock()
		first := !r.down && !r.closed
		r.down = true
		r.mu.Unlock()
		if first {
			s.notifyErr(s.epal.warn.Sprint(fmt.Sprintf("receive: master lost: %v; retrying in the background", ev.Err)))
		}
	case masterclient.Refused:
		s.notifyErr(s.epal.err.Sprint(fmt.Sprintf("receive: master %s refused us: %v", ev.Master, ev.Err)))
	}
}

// handled counts an offer as handled (accepted, refused or waiting) and
// wakes offers -w.
func (r *receiveRole) handled() {
	r.mu.Lock()
	r.seen++
	close(r.newOffer)
	r.newOffer = make(chan struct{})
	r.mu.Unlock()
}

// offered decides what to do with a new offer.
func (r *receiveRole) offered(o *masterclient.Offer) {
	defer r.handled()
	s := r.s
	ctx, cancel := context.WithTimeout(s.ctx, answerTimeout)
	defer cancel()
	by := o.By
	if by == "" {
		by = o.From
	}
	if reason := r.check(o); reason != "" {
		if err := r.reg.Refuse(ctx, o.ID, reason); err != nil {
			s.notifyErr(fmt.Sprintf("receive: refusing offer %s: %v", o.ID, err))
		}
		s.notifyErr(s.epal.warn.Sprint(fmt.Sprintf("receive: refused %s (%s) from %s: %s",
			displayName(o.Name), humanBytes(o.Size), by, reason)))
		return
	}
	if s.set.On("autoaccept") {
		j, err := r.accept(ctx, o)
		if err != nil {
			s.notifyErr(fmt.Sprintf("receive: accepting offer %s: %v", o.ID, err))
			return
		}
		s.notify(fmt.Sprintf("receive: accepted %s (%s) from %s: job %d", displayName(o.Name), humanBytes(o.Size), by, j.ID))
		return
	}
	r.mu.Lock()
	if len(r.waiting) >= MaxWaitingOffers {
		r.mu.Unlock()
		r.reg.Refuse(ctx, o.ID, "too many offers waiting")
		s.notifyErr(fmt.Sprintf("receive: refused %s from %s: %d offers already waiting", displayName(o.Name), by, MaxWaitingOffers))
		return
	}
	r.waiting[o.ID] = o
	r.arrived[o.ID] = time.Now()
	r.mu.Unlock()
	s.notify(fmt.Sprintf("%s offer %s from %s: %s (%s); accept %s or refuse %s", s.pal.hi.Sprint("receive:"),
		o.ID, by, displayName(o.Name), humanBytes(o.Size), o.ID, o.ID))
}

// check returns why an offer cannot be taken, or "".
func (r *receiveRole) check(o *masterclient.Offer) string {
	if _, err := os.Lstat(filepath.Join(r.dir, filepath.FromSlash(o.Name))); err == nil {
		return fmt.Sprintf("%s already exists in the receiver's folder", o.Name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return "no longer receiving"
	}
	for id, j := range r.active {
		if j.Name == o.Name {
			return fmt.Sprintf("already receiving %s (offer %s)", o.Name, id)
		}
	}
	return ""
}

// accept answers ACCEPT and starts the job that pulls the file.
func (r *receiveRole) accept(ctx context.Context, o *masterclient.Offer) (*Job, error) {
	if err := r.reg.Accept(ctx, o.ID); err != nil {
		var le *line.Error
		if errors.As(err, &le) && le.Code == line.CodeNotFound {
			return nil, fmt.Errorf("offer %s is no longer waiting (the sender left, or it was not answered within %v)",
				o.ID, master.OfferTimeout)
		}
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	j := r.s.jobs.Start("recv", o.Name, false, func(ctx context.Context, j *Job) error { return r.receive(ctx, j, o) })
	j.SetTotal(o.Size)
	r.active[o.ID] = j
	return j, nil
}

// receive pulls an accepted file and tells the sender how it ended.
func (r *receiveRole) receive(ctx context.Context, j *Job, o *masterclient.Offer) error {
	s := r.s
	defer func() {
		r.mu.Lock()
		delete(r.active, o.ID)
		r.mu.Unlock()
	}()
	err := s.download(ctx, j, "recv", download.Request{
		Entry: store.Entry{File: store.File{Name: o.Name, Size: o.Size, Hash: o.Hash}, Servers: []string{o.From}},
		Dir:   r.dir,
	})
	failure := ""
	switch {
	case err == nil:
	case ctx.Err() != nil:
		failure = "cancelled by the receiver"
	default:
		failure = oneLine(err)
	}
	fctx, cancel := context.WithTimeout(context.Background(), answerTimeout)
	ferr := r.reg.Finish(fctx, o.ID, failure)
	cancel()
	if ferr != nil && err == nil {
		s.notifyErr(s.epal.warn.Sprint(fmt.Sprintf("receive: %s arrived, but telling the sender failed: %v", displayName(o.Name), ferr)))
	}
	if err != nil {
		by := o.By
		if by == "" {
			by = o.From
		}
		return fmt.Errorf("pushed by %s: %w", by, downloadError(err))
	}
	return nil
}

// take removes a waiting offer, or says why there is none.
func (r *receiveRole) take(id string) (*masterclient.Offer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.waiting[id]
	if o == nil {
		if _, ok := r.active[id]; ok {
			return nil, fmt.Errorf("offer %s is already accepted", id)
		}
		return nil, fmt.Errorf("no offer %s waiting (offers lists them)", id)
	}
	delete(r.waiting, id)
	delete(r.arrived, id)
	return o, nil
}

// pruneLocked forgets offers the master has refused for want of an answer.
func (r *receiveRole) pruneLocked(now time.Time) {
	for id, t := range r.arrived {
		if now.Sub(t) > master.OfferTimeout {
			delete(r.waiting, id)
			delete(r.arrived, id)
		}
	}
}

func (r *receiveRole) waitingIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked(time.Now())
	var ids []string
	for id := range r.waiting {
		ids = append(ids, id)
	}
	sortIDs(ids)
	return ids
}

// sortIDs sorts offer ids numerically (they are decimal counters).
func sortIDs(ids []string) {
	sort.Slice(ids, func(a, b int) bool {
		if len(ids[a]) != len(ids[b]) {
			return len(ids[a]) < len(ids[b])
		}
		return ids[a] < ids[b]
	})
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
			r.mu.Lock()
			if r.seen > r.waited {
				r.waited = r.seen
				r.mu.Unlock()
				break
			}
			ch := r.newOffer
			r.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return errors.New("interrupted")
			}
		}
	}
	ids := r.waitingIDs()
	if len(ids) == 0 {
		s.out("no offers waiting\n")
		return nil
	}
	now := time.Now()
	rows := [][]string{{"ID", "FROM", "NAME", "SIZE", "HASH", "WAITING"}}
	r.mu.Lock()
	for _, id := range ids {
		o := r.waiting[id]
		if o == nil {
			continue
		}
		by := o.By
		if by == "" {
			by = o.From
		}
		rows = append(rows, []string{id, by, displayName(o.Name), humanBytes(o.Size), shortHash(o.Hash),
			humanDuration(now.Sub(r.arrived[id]).Truncate(time.Second))})
	}
	r.mu.Unlock()
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
		o, err := r.take(id)
		if err == nil {
			var j *Job
			if reason := r.check(o); reason != "" {
				err = fmt.Errorf("offer %s: %s; refused", id, reason)
				r.reg.Refuse(ctx, id, reason)
			} else if j, err = r.accept(ctx, o); err == nil {
				s.out("job %d: receiving %s (%s) from %s\n", j.ID, displayName(o.Name), humanBytes(o.Size), o.By)
			}
		}
		if err != nil {
			errs = append(errs, err.Error())
		}
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
	o, err := r.take(c.args[0])
	if err != nil {
		return err
	}
	if err := r.reg.Refuse(ctx, o.ID, reason); err != nil {
		return fmt.Errorf("offer %s: %w", o.ID, err)
	}
	s.out("refused %s from %s\n", displayName(o.Name), o.By)
	return nil
}

// ---- the sending side ----

// pushState is the sending side: the offers waiting for the receiver's
// answer and result, and the UDP server that serves offered files (started
// with the first send, closed when the last one ends).
type pushState struct {
	mu      sync.Mutex             // protects the fields below
	waiting map[string]*sentOffer  // by offer id
	early   map[string]earlyAnswer // answers that overtook the reply to OFFER
	srv     *pushServer
}

// sentOffer receives the events about one offer.
type sentOffer struct {
	events chan masterclient.Event // answer, result, or master lost
}

type earlyAnswer struct {
	at  time.Time
	evs []masterclient.Event
}

// offerAnswered routes the master's answers and results to the send jobs
// waiting for them; a lost master connection fails them all. It runs on
// the client's reading goroutine and never blocks.
func (s *Shell) offerAnswered(ev masterclient.Event) {
	p := &s.push
	p.mu.Lock()
	defer p.mu.Unlock()
	if ev.Kind == masterclient.Lost {
		for _, o := range p.waiting {
			o.deliver(ev)
		}
		return
	}
	if ev.Offer == nil {
		return
	}
	if o := p.waiting[ev.Offer.ID]; o != nil {
		o.deliver(ev)
		return
	}
	now := time.Now()
	for id, e := range p.early {
		if now.Sub(e.at) > earlyAnswerTTL {
			delete(p.early, id)
		}
	}
	if p.early == nil {
		p.early = map[string]earlyAnswer{}
	}
	if e, ok := p.early[ev.Offer.ID]; ok || len(p.early) < MaxEarlyAnswers {
		e.at = now
		e.evs = append(e.evs, ev)
		p.early[ev.Offer.ID] = e
	}
}

func (o *sentOffer) deliver(ev masterclient.Event) {
	select {
	case o.events <- ev:
	default: // a job gets at most an answer, a result and a loss
	}
}

// expect registers a send job's offer id and hands it any early answers.
func (p *pushState) expect(id string) *sentOffer {
	o := &sentOffer{events: make(chan masterclient.Event, 4)}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waiting == nil {
		p.waiting = map[string]*sentOffer{}
	}
	p.waiting[id] = o
	for _, ev := range p.early[id].evs {
		o.deliver(ev)
	}
	delete(p.early, id)
	return o
}

func (p *pushState) forget(id string) {
	p.mu.Lock()
	delete(p.waiting, id)
	p.mu.Unlock()
}

func cmdSend(ctx context.Context, s *Shell, c *call) error {
	path, err := ExpandPath(c.args[0])
	if err != nil {
		return err
	}
	peer := c.args[1]
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	name := filepath.Base(path)
	if err := line.CheckName(name, 0); err != nil {
		return fmt.Errorf("%s cannot be offered: %w", path, err)
	}
	// Find the receiver first: a typo fails here, not in a job.
	cl, err := s.client(ctx)
	if err != nil {
		return err
	}
	peers, err := cl.Peers(ctx)
	if err != nil {
		return err
	}
	var rx *store.Server
	var names []string
	for i, p := range peers {
		if p.Role != store.RoleReceiver {
			if p.Addr == peer {
				return fmt.Errorf("%s is a file server, not a receiver (it must run receive)", peer)
			}
			continue
		}
		names = append(names, p.Addr)
		if p.Name != "" {
			names = append(names, p.Name)
		}
		if p.Addr == peer || p.Name == peer {
			rx = &peers[i]
		}
	}
	if rx == nil {
		msg := fmt.Sprintf("no receiver %q on master %s", peer, cl.Master())
		if sug := suggest(peer, names); sug != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", sug)
		} else if len(names) == 0 {
			msg += " (no peer is in receive mode)"
		} else {
			msg += " (peers lists the receivers)"
		}
		return errors.New(msg)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	size := st.Size()
	j := s.jobs.Start("send", name, c.cmd.MayFail, func(ctx context.Context, j *Job) error {
		return s.runSend(ctx, j, abs, name, peer)
	})
	j.SetTotal(size)
	j.SetSources([]string{peer})
	s.out("job %d: offering %s (%s) to %s\n", j.ID, name, humanBytes(size), peer)
	return nil
}

// runSend is a send job: hash, serve, offer, and wait for the answer and
// then the result.
func (s *Shell) runSend(ctx context.Context, j *Job, path, name, peer string) error {
	hash, size, mtime, err := hashFile(ctx, path)
	if err != nil {
		return err
	}
	j.SetTotal(size)
	ps, release, err := s.push.serve(s, path, hash, size, mtime, j)
	if err != nil {
		return err
	}
	defer release()
	j.SetCounters(serverJobCounters(ps.counters).rows)
	cl, err := s.client(ctx)
	if err != nil {
		return err
	}
	id, err := cl.Offer(ctx, peer, store.File{Name: name, Size: size, Hash: hash}, ps.addr)
	if err != nil {
		return fmt.Errorf("offering to %s: %w", peer, err)
	}
	o := s.push.expect(id)
	defer s.push.forget(id)
	s.notify(fmt.Sprintf("job %d: offer %s of %s is waiting for %s to answer", j.ID, id, name, peer))
	accepted := false
	for {
		var ev masterclient.Event
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev = <-o.events:
		}
		switch ev.Kind {
		case masterclient.Lost:
			if accepted {
				return fmt.Errorf("lost the master (%v): %s's result cannot reach us", ev.Err, peer)
			}
			return fmt.Errorf("lost the master (%v) before %s answered", ev.Err, peer)
		case masterclient.OfferAnswered:
			if ev.Offer.Accepted {
				accepted = true
				s.notify(fmt.Sprintf("job %d: %s accepted %s and is pulling it", j.ID, peer, name))
				continue
			}
			switch ev.Offer.Reason {
			case "no answer":
				return fmt.Errorf("%s did not answer within %v", peer, master.OfferTimeout)
			case "receiver gone":
				return fmt.Errorf("%s went away before answering", peer)
			}
			return fmt.Errorf("%s refused %s: %s", peer, name, ev.Offer.Reason)
		case masterclient.OfferFinished:
			switch ev.Offer.Reason {
			case "":
				j.SetDone(size)
				return nil
			case "receiver gone":
				return fmt.Errorf("%s went away before it had %s (receiver gone)", peer, name)
			}
			return fmt.Errorf("%s could not receive %s: %s", peer, name, ev.Offer.Reason)
		}
	}
}

// hashFile returns a file's content hash (as the catalog writes it), size and
// modification time.
func hashFile(ctx context.Context, path string) (string, int64, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, time.Time{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", 0, time.Time{}, err
	}
	h := store.NewHash()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return "", 0, time.Time{}, err
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", 0, time.Time{}, fmt.Errorf("hashing %s: %w", path, err)
		}
	}
	return store.FormatHash(h.Sum(nil)), st.Size(), st.ModTime(), nil
}

// pushServer serves the files being pushed, by hash, and follows the
// receivers' ACKs to move the send jobs' progress bars.
type pushServer struct {
	srv      *transfer.Server
	addr     string
	done     chan struct{}
	traceF   func(transfer.Event)
	counters *transfer.Counters // this server's (every push it serves)

	mu    sync.Mutex // protects the fields below
	files map[string]*pushFile
	xfers map[pushXfer]pushTrack
}

type pushFile struct {
	path  string
	size  int64
	mtime time.Time
	refs  int
	jobs  map[*Job]bool
}

type pushXfer struct {
	peer netip.AddrPort
	tid  uint64
}

type pushTrack struct {
	hash  string
	chunk int64
}

// serve makes the push server serve path (with this hash) for job j and
// returns the server (its address is the one to offer) and a function that
// stops serving the file.
func (p *pushState) serve(s *Shell, path, hash string, size int64, mtime time.Time, j *Job) (*pushServer, func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv == nil {
		srv, err := startPushServer(s)
		if err != nil {
			return nil, nil, err
		}
		p.srv = srv
	}
	ps := p.srv
	ps.mu.Lock()
	f := ps.files[hash] // the same content sent twice is served once
	if f == nil {
		f = &pushFile{path: path, size: size, mtime: mtime, jobs: map[*Job]bool{}}
		ps.files[hash] = f
	}
	f.refs++
	f.jobs[j] = true
	ps.mu.Unlock()
	release := func() {
		p.mu.Lock()
		ps.mu.Lock()
		delete(f.jobs, j)
		if f.refs--; f.refs <= 0 && ps.files[hash] == f {
			delete(ps.files, hash)
			for k, t := range ps.xfers {
				if t.hash == hash {
					delete(ps.xfers, k)
				}
			}
		}
		idle := len(ps.files) == 0
		ps.mu.Unlock()
		if idle && p.srv == ps {
			p.srv = nil
		} else {
			idle = false
		}
		p.mu.Unlock()
		if idle {
			ps.close()
		}
	}
	return ps, release, nil
}

func startPushServer(s *Shell) (*pushServer, error) {
	pc, err := net.ListenPacket("udp", ":0")
	if err != nil {
		return nil, fmt.Errorf("opening a udp socket to serve the file: %w", err)
	}
	ps := &pushServer{addr: pc.LocalAddr().String(), done: make(chan struct{}), traceF: s.traceUDP("send"),
		counters: transfer.NewCounters(s.counters), files: map[string]*pushFile{}, xfers: map[pushXfer]pushTrack{}}
	ps.srv = transfer.NewServer(pc, transfer.ServerConfig{
		Open:     ps.open,
		Key:      fileserver.UDPKey(s.opts.Key),
		Impair:   s.impair,
		Counters: ps.counters,
		Trace:    ps.trace,
	})
	go func() {
		defer close(ps.done)
		ps.srv.Serve(s.ctx)
	}()
	return ps, nil
}

func (ps *pushServer) close() {
	ps.srv.Close()
	<-ps.done
}

// pushedFile is an offered file opened for the transfer server.
type pushedFile struct {
	*os.File
	size int64
}

func (f pushedFile) Size() int64 { return f.size }

// open serves a REQUEST: only files being pushed, and only as they were
// when offered (the receiver checks the hash anyway; this fails early).
func (ps *pushServer) open(hash string) (transfer.File, error) {
	ps.mu.Lock()
	pf := ps.files[hash]
	ps.mu.Unlock()
	if pf == nil {
		return nil, fmt.Errorf("%w: not offered", transfer.ErrNotFound)
	}
	f, err := os.Open(pf.path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil || st.Size() != pf.size || !st.ModTime().Equal(pf.mtime) {
		f.Close()
		return nil, fmt.Errorf("%w: %s changed since it was offered", transfer.ErrNotFound, pf.path)
	}
	return pushedFile{File: f, size: pf.size}, nil
}

// trace follows REQUESTs and ACKs for the progress bars, then traces.
func (ps *pushServer) trace(ev transfer.Event) {
	if ev.Dir == transfer.Received {
		k := pushXfer{ev.Peer, ev.Header.Transfer}
		switch {
		case ev.Request != nil:
			hash := store.Sum(ev.Request.Hash).String()
			ps.mu.Lock()
			if _, ok := ps.files[hash]; ok && len(ps.xfers) < MaxPushTransfers {
				ps.xfers[k] = pushTrack{hash: hash, chunk: int64(ev.Request.ChunkSize)}
			}
			ps.mu.Unlock()
		case ev.Ack != nil:
			ps.mu.Lock()
			if t, ok := ps.xfers[k]; ok {
				if f := ps.files[t.hash]; f != nil {
					done := min(int64(ev.Ack.Cumulative)*t.chunk, f.size)
					for j := range f.jobs {
						if done > j.done.Load() {
							j.SetDone(done)
						}
					}
				}
			}
			ps.mu.Unlock()
		case ev.Done != nil:
			ps.mu.Lock()
			delete(ps.xfers, k)
			ps.mu.Unlock()
		}
	}
	ps.traceF(ev)
}
