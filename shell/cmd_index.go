package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fxshell/fxsh/internal/pathglob"
	"github.com/fxshell/fxsh/internal/syserr"
	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/netproto/masterclient"
	"github.com/fxshell/fxsh/store"
)

func indexCommands() []*cmdSpec {
	return []*cmdSpec{
		{
			name: "list", aliases: []string{"ls"}, group: "Index", usage: "list [GLOB|FOLDER/] [--json]", maxArgs: 1, json: true,
			summary: "files in the index: name, size, type, modified, hash, servers",
			detail: "GLOB uses * ? and [...] (path.Match: they never cross a '/'), and ** for any depth of folders;\n" +
				"FOLDER/ (a trailing slash) lists everything under that folder. Without it every file is listed.",
			example: "list *.pdf; list lectures/; list 'lectures/**/*.pdf'",
			run:     cmdList,
			complete: func(s *Shell, c *compCtx) []string {
				return append(s.remoteFolders(c.cur), s.remoteNames(c.cur)...) // FOLDER/ or a name
			},
		},
		{
			name: "search", aliases: []string{"find"}, group: "Index", usage: "search WORD... [--json]", minArgs: 1, maxArgs: -1, json: true,
			summary: "files whose names contain every word (any case); fails with NOT FOUND if none",
			example: "search week 3 slides",
			run:     cmdSearch,
		},
		{
			name: "peers", group: "Index", usage: "peers [--json]", maxArgs: 0, json: true,
			summary: "active file servers and receivers, with file counts and when they registered",
			run:     cmdPeers,
		},
	}
}

// client returns a connection to the master, dialling it if needed.
func (s *Shell) client(ctx context.Context) (*masterclient.Client, error) {
	s.mu.Lock()
	c := s.mclient
	s.mu.Unlock()
	if c != nil {
		return c, nil
	}
	masters, err := s.resolveMasters(ctx)
	if err != nil {
		return nil, err
	}
	cfg := masterclient.Config{
		Masters: masters,
		Role:    "client",
		Trace:   s.traceTCP("client"),
	}
	if s.opts.Key != "" {
		cfg.Key = []byte(s.opts.Key)
	}
	c, err = masterclient.Dial(ctx, cfg)
	if err != nil {
		return nil, masterError(masters, err)
	}
	s.mu.Lock()
	if s.mclient != nil { // another command dialled meanwhile
		other := s.mclient
		s.mu.Unlock()
		c.Close()
		return other, nil
	}
	s.mclient = c
	s.mu.Unlock()
	return c, nil
}

// dropClient closes the master connection (the master changed).
func (s *Shell) dropClient() {
	s.mu.Lock()
	c := s.mclient
	s.mclient = nil
	s.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// masterQueryError puts a failed query into words: the master's own
// refusal (an ERR line) and an interruption stay as they are; a connection
// that broke and could not be made again (the master died) says so, instead
// of Go's dial error, and the next command dials afresh.
func (s *Shell) masterQueryError(err error) error {
	var refusal *line.Error
	if err == nil || errors.As(err, &refusal) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	// A *net.OpError covers a reset, a broken pipe and a refused dial on
	// every platform.
	var op *net.OpError
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || syserr.ConnRefused(err) ||
		errors.Is(err, net.ErrClosed) || errors.As(err, &op) {
		s.dropClient()
		return fmt.Errorf("the master at %s no longer answers (stopped, or the network is down); the next command tries again",
			strings.Join(s.masters(), ", "))
	}
	return err
}

// masterError explains a failure to reach the master.
func masterError(masters []string, err error) error {
	where := strings.Join(masters, ", ")
	if syserr.ConnRefused(err) {
		return fmt.Errorf("no master at %s (start one with `serve master`, or give --master HOST:PORT)", where)
	}
	if strings.HasPrefix(err.Error(), "master ") {
		return err // already names the master
	}
	return fmt.Errorf("master %s: %w", where, err)
}

// entryRows renders catalog entries as a table.
func (s *Shell) entryTable(entries []store.Entry) string {
	rows := [][]string{{"NAME", "SIZE", "TYPE", "MODIFIED", "HASH", "SERVERS"}}
	for _, e := range entries {
		rows = append(rows, []string{
			displayName(e.Name), humanBytes(e.Size), e.Type, e.MTime.Local().Format("2006-01-02 15:04"),
			shortHash(e.Hash), serverList(e.Servers),
		})
	}
	// Too narrow: the name is shortened, then MODIFIED, TYPE, HASH and
	// SERVERS go, in that order.
	return fitTable(s.pal, rows, tableFit{width: s.ui.Width(), shrink: 0, drop: []int{3, 2, 4, 5}, right: []int{1}})
}

// displayName quotes a name that would not print as itself.
func displayName(n string) string {
	for _, r := range n {
		if r < ' ' || r == 0x7f {
			return strconv.Quote(n)
		}
	}
	return n
}

// shortHash is the hash's first 12 hex digits: enough to tell files apart
// and to choose one with get NAME@HASH.
func shortHash(h string) string {
	h = strings.TrimPrefix(h, store.HashPrefix)
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func serverList(addrs []string) string {
	switch {
	case len(addrs) <= 2:
		return strings.Join(addrs, ",")
	default:
		return fmt.Sprintf("%s,%s +%d", addrs[0], addrs[1], len(addrs)-2)
	}
}

func (s *Shell) rememberNames(entries []store.Entry) {
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name)
	}
	s.setLastNames(names)
}

func cmdList(ctx context.Context, s *Shell, c *call) error {
	glob := ""
	if len(c.args) == 1 {
		glob = c.args[0]
	}
	cl, err := s.client(ctx)
	if err != nil {
		return err
	}
	var entries []store.Entry
	var more bool
	switch {
	case strings.HasSuffix(glob, "/") && !isGlob(glob):
		// A folder: everything under it, at any depth, by pages.
		if err := line.CheckPrefix(glob); err != nil {
			return fmt.Errorf("%q is not a folder name: %v", glob, err)
		}
		entries, err = s.folderEntries(ctx, cl, glob)
	case pathglob.HasAny(glob):
		entries, err = s.treeGlob(ctx, cl, glob)
	default:
		entries, more, err = cl.List(ctx, glob, 0)
		err = s.masterQueryError(err)
	}
	if err != nil {
		return err
	}
	s.rememberNames(entries)
	if c.json {
		return s.outJSON(filesJSON(entries, more))
	}
	switch {
	case len(entries) == 0 && glob == "":
		s.out("the index is empty: no file server has registered files\n")
		return nil
	case len(entries) == 0:
		s.out("no file matches %q\n", glob)
		return nil
	}
	s.out("%s", s.entryTable(entries))
	if more {
		s.out("(more files match; narrow the glob)\n")
	}
	return nil
}

func cmdSearch(ctx context.Context, s *Shell, c *call) error {
	q := strings.Join(c.args, " ")
	cl, err := s.client(ctx)
	if err != nil {
		return err
	}
	entries, more, err := cl.Search(ctx, q, 0)
	if err != nil {
		return s.masterQueryError(err)
	}
	if c.json {
		if err := s.outJSON(filesJSON(entries, more)); err != nil {
			return err
		}
	}
	if len(entries) == 0 {
		if !c.json {
			s.out("NOT FOUND\n")
		}
		return fmt.Errorf("no file name contains %s", quoteWords(c.args))
	}
	if c.json {
		s.rememberNames(entries)
		return nil
	}
	s.rememberNames(entries)
	s.out("%s", s.entryTable(entries))
	if more {
		s.out("(more files match; add words to narrow the search)\n")
	}
	return nil
}

func quoteWords(ws []string) string {
	q := make([]string, len(ws))
	for i, w := range ws {
		q[i] = strconv.Quote(w)
	}
	return strings.Join(q, " and ")
}

func cmdPeers(ctx context.Context, s *Shell, c *call) error {
	cl, err := s.client(ctx)
	if err != nil {
		return err
	}
	peers, err := cl.Peers(ctx)
	if err != nil {
		return s.masterQueryError(err)
	}
	if c.json {
		sort.Slice(peers, func(a, b int) bool { return peers[a].Addr < peers[b].Addr })
		return s.outJSON(peersJSON(peers))
	}
	if len(peers) == 0 {
		s.out("no peers: no file server or receiver is registered\n")
		return nil
	}
	sort.Slice(peers, func(a, b int) bool { return peers[a].Addr < peers[b].Addr })
	rows := [][]string{{"ADDRESS", "ROLE", "NAME", "FILES", "REGISTERED"}}
	now := time.Now()
	for _, p := range peers {
		name := p.Name
		if name == "" {
			name = "-"
		}
		rows = append(rows, []string{p.Addr, p.Role, name, strconv.Itoa(p.Files),
			p.Registered.Local().Format("15:04:05") + " (" + humanDuration(now.Sub(p.Registered).Truncate(time.Second)) + " ago)"})
	}
	s.out("%s", fitTable(s.pal, rows, tableFit{width: s.ui.Width(), shrink: 2, drop: []int{4}, right: []int{3}}))
	return nil
}
