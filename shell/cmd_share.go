package shell

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fxshell/fxsh/internal/syserr"
	"github.com/fxshell/fxsh/netproto/fileserver"
	"github.com/fxshell/fxsh/store/shareindex"
)

func shareCommands() []*cmdSpec {
	return []*cmdSpec{
		{
			name: "share", group: "Index", usage: "share PATH... [--udp ADDR]", minArgs: 1, maxArgs: -1,
			summary: "share folders and files: index them, register them with the master, serve them over UDP",
			detail: "Folders are indexed recursively; one folder's contents appear at the top of the index,\n" +
				"several folders each under their own name. Symlinks never lead outside a shared folder;\n" +
				"unsafe names are skipped with a warning. A rescan every 30 s picks up changes; a file\n" +
				"found changed when a client asks for it is never served as the old version (the transfer\n" +
				"fails) and is re-indexed within seconds.\n" +
				"--udp sets where to serve (default every interface, a free port).",
			example: "share ./lectures --udp 0.0.0.0:4000",
			run:     cmdShare,
			complete: func(s *Shell, c *compCtx) []string {
				if len(c.prev) > 0 && c.prev[len(c.prev)-1] == "--udp" {
					return nil
				}
				return append(localPaths(c.cur), "--udp")
			},
		},
		{
			name: "unshare", group: "Index", usage: "unshare", maxArgs: 0,
			summary: "stop sharing: BYE to the master (the files leave the index at once), tell the clients downloading, close the UDP socket",
			run:     cmdUnshare,
		},
		{
			name: "rescan", group: "Index", usage: "rescan", maxArgs: 0,
			summary: "re-index the shared folders now and register the changes",
			run:     cmdRescan,
		},
	}
}

// shareRole is a share running in this process.
type shareRole struct {
	srv *fileserver.Server
}

func (r *shareRole) Describe() string {
	return fmt.Sprintf("sharing %s from %s on udp %s (master %s)", plural(len(r.srv.Files()), "file", "files"),
		strings.Join(r.srv.Paths(), ", "), r.srv.Addr(), r.srv.Master())
}

func (r *shareRole) Close(ctx context.Context) error { return r.srv.Close(ctx) }

// cachePath is where shared files' hashes are cached between runs: the
// system's cache folder (os.UserCacheDir: $XDG_CACHE_HOME or ~/.cache on
// Linux, ~/Library/Caches on macOS, %LocalAppData% on Windows) + fxsh/hashes.
func cachePath() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	dir = filepath.Join(dir, "fxsh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ""
	}
	return filepath.Join(dir, "hashes")
}

func cmdShare(ctx context.Context, s *Shell, c *call) error {
	paths, f, err := c.flags(map[string]bool{"--udp": true})
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return errors.New("usage: share PATH... [--udp ADDR]")
	}
	if paths, err = expandPaths(paths); err != nil {
		return err
	}
	if s.role("share") != nil {
		return errors.New("already sharing (unshare first, or rescan to pick up changes)")
	}
	udp := f["--udp"]
	if udp != "" {
		if _, _, err := net.SplitHostPort(udp); err != nil {
			return fmt.Errorf("bad --udp address %q: want HOST:PORT", udp)
		}
	}
	masters, err := s.resolveMasters(ctx)
	if err != nil {
		return err
	}
	first := make(chan struct{})
	s.mu.Lock()
	s.shareSeen, s.shareDown, s.shareListed, s.shareFirst = false, false, "", first
	s.mu.Unlock()
	srv, warns, err := fileserver.Start(ctx, fileserver.Config{
		Paths:       paths,
		UDPAddr:     udp,
		Masters:     masters,
		Key:         s.opts.Key,
		CachePath:   cachePath(),
		Impair:      s.impair,
		Counters:    s.counters,
		Trace:       s.traceUDP("share"),
		Capture:     s.captureUDP,
		TraceActive: s.tracing,
		LineTrace:   s.traceTCP("share"),
		OnEvent:     s.shareEvent,
	})
	s.printWarnings(warns)
	if err != nil {
		if errors.Is(err, shareindex.ErrNothingToShare) {
			return fmt.Errorf("%v: an empty share offers nothing; add files first", err)
		}
		return err
	}
	// Wait (bounded) for the first registration so a script's next command
	// finds the files. A master that does not answer ends the wait at its
	// first failure, not after the whole bound: it is retried in the
	// background and reported when it answers.
	wctx, cancel := context.WithTimeout(ctx, shareRegisterWait)
	werr := srv.WaitRegistered(waitFirst(wctx, first))
	cancel()
	if werr != nil && ctx.Err() == nil && !errors.Is(werr, context.DeadlineExceeded) && !errors.Is(werr, context.Canceled) {
		srv.Close(context.Background())
		return fmt.Errorf("registering with %s: %w", strings.Join(s.masters(), ","), werr)
	}
	s.addRole("share", &shareRole{srv: srv})
	s.mu.Lock()
	listed := s.shareListed
	s.mu.Unlock()
	where := srv.Addr()
	if listed != "" && listed != where {
		where = listed + " (socket " + srv.Addr() + ")"
	}
	s.out("sharing %s from %s on udp %s\n", plural(len(srv.Files()), "file", "files"), strings.Join(paths, ", "), where)
	if werr != nil {
		s.warn("master %s not reachable; retrying in the background (the files are listed once it answers)", strings.Join(s.masters(), ","))
	}
	return nil
}

// errShareRefused marks a master's refusal for shareOutcome.
var errShareRefused = errors.New("refused by the master")

// shareRegisterWait bounds how long share waits for its first registration.
const shareRegisterWait = 5 * time.Second

// waitFirst returns a context that ends with ctx or when first is closed.
func waitFirst(ctx context.Context, first <-chan struct{}) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer cancel()
		select {
		case <-first:
			// Registered: WaitRegistered returns by itself; a failure:
			// stop waiting now.
		case <-ctx.Done():
		}
	}()
	return ctx
}

// shareOutcome records the share's first registration, or a failure that
// ends share's wait: a refusal, or nothing listening at the master's
// address (a connection that broke is retried at once, so it does not).
func (s *Shell) shareOutcome(registered bool, listed string, err error) (seen bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen = s.shareSeen
	if registered {
		s.shareSeen = true
		if listed != "" {
			s.shareListed = listed
		}
	}
	final := registered || errors.Is(err, errShareRefused) || syserr.ConnRefused(err)
	if final && s.shareFirst != nil {
		close(s.shareFirst)
		s.shareFirst = nil
	}
	return seen
}

// printWarnings shows skipped files, at most a screenful.
func (s *Shell) printWarnings(warns []shareindex.Warning) {
	const most = 20
	for i, w := range warns {
		if i == most {
			s.warn("… and %d more skipped", len(warns)-most)
			break
		}
		s.warn("skipped %s", w.String())
	}
}

// shareEvent reports the share role's changes.
func (s *Shell) shareEvent(ev fileserver.Event) {
	switch ev.Kind {
	case fileserver.MasterLost:
		seen := s.shareOutcome(false, "", ev.Err)
		s.mu.Lock()
		first := !s.shareDown
		s.shareDown = true
		s.mu.Unlock()
		if first && seen {
			s.notifyErr(s.epal.warn.Sprint(fmt.Sprintf("share: master lost: %v; retrying in the background", ev.Err)))
		}
	case fileserver.Refused:
		s.shareOutcome(false, "", errShareRefused) // no point waiting
		s.notifyErr(s.epal.err.Sprint(fmt.Sprintf("share: master %s refused us: %v", ev.Master, ev.Err)))
	case fileserver.Rescanned:
		s.notify(fmt.Sprintf("share: rescan found changes; %s registered", plural(ev.Files, "file", "files")))
	case fileserver.Warning:
		s.notifyErr(s.epal.warn.Sprint("share: " + ev.Err.Error()))
	case fileserver.Modified:
		s.notifyErr(s.epal.warn.Sprint(fmt.Sprintf("share: %v; not served until it is re-indexed (in a moment)", ev.Err)))
	case fileserver.Registered:
		s.shareOutcome(true, ev.Addr, nil)
		s.mu.Lock()
		back := s.shareDown
		s.shareDown = false
		s.mu.Unlock()
		if back || s.set.On("trace") {
			s.notify(fmt.Sprintf("share: %s registered on %s", plural(ev.Files, "file", "files"), ev.Master))
		}
	}
}

func cmdUnshare(ctx context.Context, s *Shell, _ *call) error {
	r := s.role("share")
	if r == nil {
		return errors.New("not sharing")
	}
	n, _ := s.shareDownloads()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := r.Close(cctx)
	s.removeRole("share")
	if err != nil {
		return fmt.Errorf("stopped, but the master may keep the files until its timeout: %w", err)
	}
	if n > 0 {
		s.out("stopped sharing (%s cut: their clients were told)\n", plural(n, "download", "downloads"))
		return nil
	}
	s.out("stopped sharing\n")
	return nil
}

func cmdRescan(ctx context.Context, s *Shell, _ *call) error {
	r, ok := s.role("share").(*shareRole)
	if !ok || r == nil {
		return errors.New("not sharing")
	}
	changed, warns, err := r.srv.Rescan(ctx)
	s.printWarnings(warns)
	if err != nil {
		return err
	}
	if changed {
		s.out("rescanned: %s, changes registered\n", plural(len(r.srv.Files()), "file", "files"))
	} else {
		s.out("rescanned: %s, no change\n", plural(len(r.srv.Files()), "file", "files"))
	}
	return nil
}
