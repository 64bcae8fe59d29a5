package shell

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/fxshell/fxsh/internal/pathglob"
	"github.com/fxshell/fxsh/netproto/download"
	"github.com/fxshell/fxsh/netproto/masterclient"
	"github.com/fxshell/fxsh/netproto/transfer"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/partfile"
)

func getCommands() []*cmdSpec {
	return []*cmdSpec{
		{
			name: "get", group: "Transfers", usage: "get NAME... [-o DIR] [-f] [--as NEWNAME] | get -r FOLDER... [-o DIR] [-f]", minArgs: 1, maxArgs: -1,
			summary: "download files as background jobs (globs allowed, ** across folders); -r: whole folders",
			detail: "Each file is a job (see jobs, wait, cancel); `set parallel N` run at once, the rest queue.\n" +
				"A name offered with different contents: get takes the content offered by the most hosts (distinct IPs;\n" +
				"ties: the one registered first) and says so on stderr; NAME@HASH (a hash prefix from list)\n" +
				"or NAME@HOST:PORT chooses. Files land in the download folder (--dir, or -o DIR) and never outside it;\n" +
				"an existing file is kept unless -f. A cancelled download resumes where it stopped.\n" +
				"--as NEWNAME saves one file under another name: for a name this system cannot hold\n" +
				"(CON, aux.c, a:b, trailing dot on Windows), or one already taken.\n" +
				"Globs: * ? [..] within a folder; ** for any depth of folders ('lectures/**/*.pdf').\n" +
				"-r FOLDER downloads the folder's whole tree into DIR/FOLDER's last name, keeping its structure\n" +
				"(see mirror: files already there with the same content are skipped, partial ones resumed,\n" +
				"one job a file under one total in jobs and wait); a changed file is kept unless -f.",
			example: "get week3/slides.pdf 'notes one.txt' -o ~/Downloads; get -r lectures",
			run:     cmdGet,
			complete: func(s *Shell, c *compCtx) []string {
				if len(c.prev) > 0 && (c.prev[len(c.prev)-1] == "-o" || c.prev[len(c.prev)-1] == "--as") {
					return localPaths(c.cur)
				}
				if slices.Contains(c.prev, "-r") {
					return s.remoteFolders(c.cur)
				}
				return s.remoteNames(c.cur)
			},
		},
		{
			name: "stats", group: "Transfers", usage: "stats [--json]", maxArgs: 0, json: true,
			summary: "protocol counters for this process (as a server and as a client)",
			run:     cmdStats,
		},
		{
			name: "trace", group: "Transfers", usage: "trace on|all|off | trace --pcap FILE [--max SIZE] [off]", minArgs: 1, maxArgs: 5,
			summary:  "show the protocols as they pass (on: what happens, in words; all: every datagram), or capture them to a pcap file",
			detail:   traceHelp,
			example:  "trace on; set loss 0.2; get week3/slides.pdf; wait; trace --pcap class.pcap",
			run:      cmdTrace,
			complete: func(*Shell, *compCtx) []string { return []string{"on", "all", "off", "--pcap"} },
		},
	}
}

// isGlob reports whether a name has path.Match metacharacters.
func isGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// escapeGlob returns the pattern that matches exactly the name s.
func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[\`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// resolve turns one get argument into catalog entries: one per distinct
// name, each with every server offering that content.
//
// Kept whole: the lookup, the NAME@CHOICE fallback and the report of
// ambiguous names, in the order a user's argument goes through them.
func (s *Shell) resolve(ctx context.Context, arg string) ([]store.Entry, error) {
	cl, err := s.client(ctx)
	if err != nil {
		return nil, err
	}
	query := func(glob string) ([]store.Entry, error) {
		if pathglob.HasAny(glob) {
			return s.treeGlob(ctx, cl, glob) // "**": the folder it cannot leave, by pages
		}
		entries, more, err := cl.List(ctx, glob, 0)
		err = s.masterQueryError(err)
		if err == nil && more {
			// Never download a silent part of what was asked for.
			return nil, fmt.Errorf("%q matches more files than the master sends at once (%d); narrow it", glob, len(entries))
		}
		return entries, err
	}
	name, choose := arg, ""
	// A glob fetches what it matches, and a file whose name has glob
	// characters ("[draft] notes?.txt") is fetched by its name too: the
	// exact name is looked up as well (a name registered as "*.txt"
	// cannot narrow `get *.txt` to itself).
	var entries []store.Entry
	if isGlob(arg) {
		if es, err := query(arg); err == nil {
			entries = es
		} else if !strings.Contains(err.Error(), "bad glob") {
			return nil, err
		}
	}
	exact, err := query(escapeGlob(arg))
	if err != nil {
		return nil, err
	}
	for _, e := range exact {
		if !slices.ContainsFunc(entries, func(o store.Entry) bool { return o.Name == e.Name && o.Hash == e.Hash }) {
			entries = append(entries, e)
		}
	}
	if len(entries) == 0 {
		if i := strings.LastIndexByte(arg, '@'); i > 0 {
			name, choose = arg[:i], arg[i+1:]
			if entries, err = query(name); err != nil {
				return nil, err
			}
			entries = filterChoice(entries, choose)
		}
	}
	if len(entries) == 0 {
		if choose != "" {
			return nil, fmt.Errorf("no file %q offered as %q", name, choose)
		}
		if isGlob(arg) {
			return nil, fmt.Errorf("no file matches %q", arg)
		}
		return nil, fmt.Errorf("no file named %q in the index (try search)", arg)
	}
	return s.pickEach(ctx, cl, entries), nil
}

// pickEach keeps one entry per name: where a name is offered with several
// contents, the one pickContent picks, saying so on stderr.
func (s *Shell) pickEach(ctx context.Context, cl *masterclient.Client, entries []store.Entry) []store.Entry {
	byName := map[string][]store.Entry{}
	for _, e := range entries {
		byName[e.Name] = append(byName[e.Name], e)
	}
	var out []store.Entry
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	var since map[string]time.Time // server address -> registered at, fetched once if needed
	for _, n := range names {
		es := byName[n]
		if len(es) > 1 {
			if since == nil {
				since = map[string]time.Time{}
				if peers, err := cl.Peers(ctx); err == nil {
					for _, p := range peers {
						since[p.Addr] = p.Registered
					}
				}
			}
			pick, rest := pickContent(es, since)
			var others []string
			for _, e := range rest {
				// Quoted as it must be typed: get 'notes one.txt@3fa2…'.
				others = append(others, fmt.Sprintf("%s (%s)", s.syntax.Quote(n+"@"+shortHash(e.Hash)), plural(hosts(e.Servers), "host", "hosts")))
			}
			s.warn("%q has %d different contents: taking %s, offered by the most hosts (%d; ties: the one registered first); not %s",
				n, len(es), s.syntax.Quote(n+"@"+shortHash(pick.Hash)), hosts(pick.Servers), strings.Join(others, ", "))
			out = append(out, pick)
			continue
		}
		out = append(out, es[0])
	}
	return out
}

// pickContent chooses among the contents offered under one name, by a rule
// a newcomer cannot game cheaply: the content offered by the most hosts
// (distinct IPs: a peer registering from many ports of one machine counts
// once), then the one whose first server registered earliest (since:
// PEERS' since=), then the lowest hash. It returns the pick and the others.
func pickContent(es []store.Entry, since map[string]time.Time) (store.Entry, []store.Entry) {
	first := func(e store.Entry) time.Time {
		var t time.Time
		for _, a := range e.Servers {
			if r, ok := since[a]; ok && (t.IsZero() || r.Before(t)) {
				t = r
			}
		}
		if t.IsZero() {
			return time.Unix(1<<40, 0) // unknown: last
		}
		return t
	}
	es = slices.Clone(es)
	slices.SortStableFunc(es, func(a, b store.Entry) int {
		if ha, hb := hosts(a.Servers), hosts(b.Servers); ha != hb {
			return hb - ha
		}
		if c := first(a).Compare(first(b)); c != 0 {
			return c
		}
		return strings.Compare(a.Hash, b.Hash)
	})
	return es[0], es[1:]
}

// hosts counts the distinct IPs among server addresses.
func hosts(addrs []string) int {
	seen := map[string]bool{}
	for _, a := range addrs {
		h, _, err := net.SplitHostPort(a)
		if err != nil {
			h = a
		}
		seen[h] = true
	}
	return len(seen)
}

// filterChoice keeps the entries a NAME@CHOICE picks: a server address or a
// hash prefix. A chosen server becomes the only source.
func filterChoice(entries []store.Entry, choose string) []store.Entry {
	var out []store.Entry
	if _, _, err := net.SplitHostPort(choose); err == nil {
		for _, e := range entries {
			for _, srv := range e.Servers {
				if srv == choose {
					e.Servers = []string{srv}
					out = append(out, e)
					break
				}
			}
		}
		return out
	}
	p := strings.ToLower(strings.TrimPrefix(choose, store.HashPrefix))
	if len(p) < 4 {
		return nil
	}
	for _, e := range entries {
		if strings.HasPrefix(strings.TrimPrefix(e.Hash, store.HashPrefix), p) {
			out = append(out, e)
		}
	}
	return out
}

func cmdGet(ctx context.Context, s *Shell, c *call) error {
	names, f, err := c.flags(map[string]bool{"-o": true, "-f": false, "--as": true, "-r": false})
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return errors.New("usage: get NAME... [-o DIR] [-f] [--as NEWNAME], get -r FOLDER... [-o DIR] [-f]")
	}
	dir := s.opts.Dir
	if o, ok := f["-o"]; ok {
		if dir, err = ExpandPath(o); err != nil {
			return err
		}
	}
	_, overwrite := f["-f"]
	as, hasAs := f["--as"]
	if _, r := f["-r"]; r {
		if hasAs {
			return errors.New("--as names one file; get -r takes folders")
		}
		return s.getFolders(ctx, c, names, dir, overwrite)
	}
	if hasAs {
		if err := checkLocalName(as); err != nil {
			return fmt.Errorf("--as: %w", err)
		}
	}
	// Resolve every name first: a typo fails the command before any job starts.
	var wanted []store.Entry
	seen := map[string]bool{}
	for _, n := range names {
		es, err := s.resolve(ctx, n)
		if err != nil {
			return err
		}
		for _, e := range es {
			if !seen[e.Name] {
				seen[e.Name] = true
				wanted = append(wanted, e)
			}
		}
	}
	if hasAs && len(wanted) != 1 {
		return fmt.Errorf("--as names one file, and %d match", len(wanted))
	}
	if !hasAs {
		if err := refuseLocalNames(wanted); err != nil {
			return err
		}
	}
	if len(wanted) > 1 {
		locals := make([]string, len(wanted))
		for i, e := range wanted {
			locals[i] = e.Name
		}
		if a, b := caseTwins(dir, locals); a != "" {
			return fmt.Errorf("%q and %q are one file name in %s (its file system ignores case): get one of them with --as NEWNAME, or each with -o into its own folder", a, b, dir)
		}
	}
	for _, e := range wanted {
		local := e.Name
		if hasAs {
			local = as
		}
		j := s.startDownload(e, dir, local, overwrite, c.cmd.MayFail)
		j.SetTotal(e.Size)
		if local != e.Name {
			s.out("job %d: %s as %s (%s) from %s\n", j.ID, e.Name, local, humanBytes(e.Size), serverList(e.Servers))
			continue
		}
		s.out("job %d: %s (%s) from %s\n", j.ID, e.Name, humanBytes(e.Size), serverList(e.Servers))
	}
	return nil
}

// quoteArg quotes a name for a command line when it would not read back as
// one argument, as this system's syntax reads it (on Windows a backslash is
// not an escape: a\b stays a\b). A name with a control character cannot be
// typed at all: it is shown Go-quoted, unambiguous.
func quoteArg(n string) string {
	if strings.IndexFunc(n, unicode.IsControl) >= 0 {
		return strconv.Quote(n)
	}
	return NativeSyntax.Quote(n)
}

// startDownload queues a download job.
// local is the name it is saved under (e.Name unless get --as).
func (s *Shell) startDownload(e store.Entry, dir, local string, overwrite, mayFail bool) *Job {
	as := ""
	if local != e.Name {
		as = local
	}
	return s.jobs.Start("get", e.Name, mayFail, func(ctx context.Context, j *Job) error {
		return downloadError(s.download(ctx, j, "get", download.Request{Entry: e, Dir: dir, As: as, Overwrite: overwrite}, download.Get))
	})
}

// download is the body of every job that pulls a file: get's (with
// download.Get), and receive's for an accepted offer (with the
// Receiver's Pull). It fills in what the settings say (chunk size, key,
// timeout, impairment), traces as role, and keeps the job's progress,
// sources and counters current.
func (s *Shell) download(ctx context.Context, j *Job, role string, req download.Request,
	get func(context.Context, download.Request) (download.Result, error)) error {
	e := req.Entry
	j.SetTotal(e.Size)
	j.SetSources(e.Servers)
	jc := newJobCounters(s.counters, false)
	j.SetCounters(jc.rows)
	if v := s.set.Get("chunk"); v != "auto" {
		req.ChunkSize, _ = strconv.Atoi(v)
	}
	req.Key = s.opts.Key
	req.SourceTimeout = s.set.Duration("timeout")
	req.Impair = s.impair
	req.Counters = jc.c
	req.Trace = s.traceUDP(role)
	req.Capture = s.captureUDP
	req.TraceActive = s.tracing
	req.Started = func(resumed int64, _ int) {
		j.SetResumed(resumed)
		if resumed > 0 {
			s.notify(fmt.Sprintf("job %d: resuming %s: %s already here", j.ID, e.Name, humanBytes(resumed)))
		}
	}
	req.Progress = func(p transfer.Progress) {
		j.SetDone(p.Have)
		jc.progress(p)
	}
	req.Suspects = s.suspects
	req.WholeFile = s.set.Get("verify") == "whole"
	finished := s.seeding(&req)
	res, err := get(ctx, req)
	finished(err)
	if err == nil {
		j.SetDone(e.Size)
	}
	if res.Restarted {
		s.notify(fmt.Sprintf("job %d: %s: the resumed part failed the whole-file check; started over", j.ID, e.Name))
	}
	if len(res.Suspects) > 0 {
		s.notifyErr(fmt.Sprintf("job %d: %s: suspect %s: bytes from it failed the whole-file check; fetched without it",
			j.ID, e.Name, strings.Join(res.Suspects, ", ")))
	}
	jc.setSources(endedSources(res.Fetch.Sources, err == nil)) // jobs -v shows each source's final share, not the last sample's
	return err
}

// endedSources marks the sources of a download that has ended: one the
// fetch left "active" (or idle, requesting) is "done" after a success and
// "stopped" otherwise, never "active" beside a finished job.
func endedSources(src []transfer.SourceStats, ok bool) []transfer.SourceStats {
	out := append([]transfer.SourceStats(nil), src...)
	for i := range out {
		if out[i].State == "failed" {
			continue
		}
		if ok {
			out[i].State = "done"
		} else {
			out[i].State = "stopped"
		}
	}
	return out
}

// downloadError makes a download failure read well in a job line.
func downloadError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, partfile.ErrExists):
		return fmt.Errorf("%w (use get -f to replace it, or get NAME --as NEWNAME)", err)
	case errors.Is(err, partfile.ErrNoSpace):
		return fmt.Errorf("%w; the partial file is kept: free space and get it again to resume", err)
	case errors.Is(err, transfer.ErrSourcesFailed):
		return fmt.Errorf("%w; the partial file is kept for a resume", err)
	}
	return err
}
