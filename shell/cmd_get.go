package shell

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/fxshell/fxsh/netproto/download"
	"github.com/fxshell/fxsh/netproto/transfer"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/partfile"
)

func init() { areaCommands = append(areaCommands, getCommands) }

func getCommands() []*cmdSpec {
	return []*cmdSpec{
		{
			name: "get", group: "Transfers", usage: "get NAME... [-o DIR] [-f]", minArgs: 1, maxArgs: -1,
			summary: "download files as background jobs (globs allowed); returns at once with the job ids",
			detail: "Each file is a job (see jobs, wait, cancel); `set parallel N` run at once, the rest queue.\n" +
				"A name offered with different contents must be chosen: NAME@HASH (a hash prefix from list)\n" +
				"or NAME@HOST:PORT. Files land in the download folder (--dir, or -o DIR) and never outside it;\n" +
				"an existing file is kept unless -f. A cancelled download resumes where it stopped.",
			example: "get week3/slides.pdf 'notes one.txt' -o ~/Downloads",
			run:     cmdGet,
			complete: func(s *Shell, c *compCtx) []string {
				if len(c.prev) > 0 && c.prev[len(c.prev)-1] == "-o" {
					return localPaths(c.cur)
				}
				return s.remoteNames(c.cur)
			},
		},
		{
			name: "stats", group: "Transfers", usage: "stats", maxArgs: 0,
			summary: "protocol counters for this process (as a server and as a client)",
			run:     cmdStats,
		},
		{
			name: "trace", group: "Transfers", usage: "trace on|off | trace --pcap FILE [--max SIZE] [off]", minArgs: 1, maxArgs: 5,
			summary:  "print protocol messages as they pass (TCP lines; UDP datagrams, DATA sampled), or capture them to a pcap file",
			run:      cmdTrace,
			complete: func(*Shell, *compCtx) []string { return []string{"on", "off", "--pcap"} },
		},
	}
}

// isGlob reports whether a name has path.Match metacharacters.
func isGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// resolve turns one get argument into catalog entries: one per distinct
// name, each with every server offering that content.
func (s *Shell) resolve(ctx context.Context, arg string) ([]store.Entry, error) {
	cl, err := s.client(ctx)
	if err != nil {
		return nil, err
	}
	query := func(glob string) ([]store.Entry, error) {
		entries, more, err := cl.List(ctx, glob, 0)
		err = s.masterQueryError(err)
		if err == nil && more {
			// Never download a silent part of what was asked for.
			return nil, fmt.Errorf("%q matches more files than the master sends at once (%d); narrow it", glob, len(entries))
		}
		return entries, err
	}
	name, choose := arg, ""
	entries, err := query(arg)
	if err != nil {
		return nil, err
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
	byName := map[string][]store.Entry{}
	for _, e := range entries {
		byName[e.Name] = append(byName[e.Name], e)
	}
	var out []store.Entry
	var ambiguous []string
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		es := byName[n]
		if len(es) > 1 {
			var opts []string
			for _, e := range es {
				// Quoted as it must be typed: get 'notes one.txt@3fa2…'.
				opts = append(opts, fmt.Sprintf("%s (%s, %s)", Quote(n+"@"+shortHash(e.Hash)), humanBytes(e.Size), serverList(e.Servers)))
			}
			ambiguous = append(ambiguous, fmt.Sprintf("%q has %d different contents; choose one: %s", n, len(es), strings.Join(opts, " or ")))
			continue
		}
		out = append(out, es[0])
	}
	if len(ambiguous) > 0 {
		return nil, errors.New(strings.Join(ambiguous, "; "))
	}
	return out, nil
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
	names, f, err := c.flags(map[string]bool{"-o": true, "-f": false})
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return errors.New("usage: get NAME... [-o DIR] [-f]")
	}
	dir := s.opts.Dir
	if o, ok := f["-o"]; ok {
		if dir, err = ExpandPath(o); err != nil {
			return err
		}
	}
	_, overwrite := f["-f"]
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
	var ids []string
	for _, e := range wanted {
		j := s.startDownload(e, dir, overwrite, c.cmd.MayFail)
		j.SetTotal(e.Size)
		ids = append(ids, strconv.Itoa(j.ID))
		s.out("job %d: %s (%s) from %s\n", j.ID, e.Name, humanBytes(e.Size), serverList(e.Servers))
	}
	_ = ids
	return nil
}

// startDownload queues a download job.
func (s *Shell) startDownload(e store.Entry, dir string, overwrite, mayFail bool) *Job {
	return s.jobs.Start("get", e.Name, mayFail, func(ctx context.Context, j *Job) error {
		return downloadError(s.download(ctx, j, "get", download.Request{Entry: e, Dir: dir, Overwrite: overwrite}, download.Get))
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
	res, err := get(ctx, req)
	if err == nil {
		j.SetDone(e.Size)
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
		return fmt.Errorf("%w (use get -f to replace it)", err)
	case errors.Is(err, partfile.ErrNoSpace):
		return fmt.Errorf("%w; the partial file is kept: free space and get it again to resume", err)
	case errors.Is(err, transfer.ErrSourcesFailed):
		return fmt.Errorf("%w; the partial file is kept for a resume", err)
	}
	return err
}
