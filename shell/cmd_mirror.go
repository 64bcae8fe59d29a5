package shell

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/fxshell/fxsh/internal/pathglob"
	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/netproto/masterclient"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/partfile"
)

// Folders: get -r FOLDER, mirror FOLDER [LOCAL], list FOLDER/ and "**"
// globs. The master lists a folder by pages (LIST prefix=, PROTOCOL.md
// 1.5; masterclient.ListFolder); the shell plans the download here (which
// files are already here, which resume, which this system cannot hold)
// and starts one job a file under one job group (jobgroup.go).

// MaxTreeFiles bounds the files of one folder listing (get -r, mirror,
// list FOLDER/, a "**" glob): the listing is held whole (about 300 bytes a
// file) and every file becomes a job, so a typo at the top of a huge
// catalog cannot make the shell hold millions. Ten times the files one
// file server may register (line.MaxFiles).
const MaxTreeFiles = 100_000

func mirrorCommands() []*cmdSpec {
	return []*cmdSpec{{
		name: "mirror", group: "Transfers", usage: "mirror FOLDER [LOCAL]", minArgs: 1, maxArgs: 2,
		summary: "download a shared folder's whole tree into LOCAL, skipping files already there with the same content",
		detail: "The files under FOLDER land under LOCAL keeping their folders (without LOCAL: FOLDER's last name\n" +
			"in the download folder). A file already there with the same content (BLAKE3) is skipped, a partial\n" +
			"one resumed, a changed one replaced. Each file is a job (set parallel N at once); jobs and wait\n" +
			"show the folder's total on one line, and a file that fails fails the exit status. Nothing is\n" +
			"written outside LOCAL: a name with '..', an absolute name or a symbolic link leading out is\n" +
			"refused; a name this system cannot hold (aux.c on Windows) is refused alone, naming it.\n" +
			"Run it again to bring LOCAL up to date: only what changed is fetched.",
		example: "mirror lectures ~/courses/lectures",
		run:     cmdMirror,
		complete: func(s *Shell, c *compCtx) []string {
			if len(c.prev) > 0 { // LOCAL
				return localPaths(c.cur)
			}
			return s.remoteFolders(c.cur)
		},
	}}
}

// treeReq is one folder download.
type treeReq struct {
	kind      string // "mirror" or "get -r"
	remote    string // the remote folder, without a trailing "/"
	root      string // the local folder nothing is written outside of
	under     string // the folder inside root standing for remote ("": root itself)
	overwrite bool   // replace a local file whose content differs
	mayFail   bool   // a "-cmd": failures do not fail the script
	// goos is the system whose names are checked (partfile.CheckNameFor);
	// "" is this one.
	goos string
}

// treeFile is one file of a folder download: the remote entry and the
// name it is saved under inside root.
type treeFile struct {
	e     store.Entry
	local string
}

// treePlan is what a folder download does.
type treePlan struct {
	fetch   []treeFile
	skipped int      // already under root with the same content
	refused []string // why each name this system cannot hold is refused
	resumes int      // fetches that resume a partial file
}

func cmdMirror(ctx context.Context, s *Shell, c *call) error {
	remote, err := remoteFolder(c.args[0])
	if err != nil {
		return err
	}
	req := treeReq{kind: "mirror", remote: remote, root: s.opts.Dir, under: path.Base(remote),
		overwrite: true, mayFail: c.cmd.MayFail}
	if len(c.args) == 2 {
		if req.root, err = ExpandPath(c.args[1]); err != nil {
			return err
		}
		req.under = ""
	}
	return s.getTree(ctx, req)
}

// getFolders is get -r: each folder into dir/its last name.
func (s *Shell) getFolders(ctx context.Context, c *call, folders []string, dir string, overwrite bool) error {
	var reqs []treeReq
	for _, f := range folders {
		remote, err := remoteFolder(f)
		if err != nil {
			return err
		}
		reqs = append(reqs, treeReq{kind: "get -r", remote: remote, root: dir, under: path.Base(remote),
			overwrite: overwrite, mayFail: c.cmd.MayFail})
	}
	for _, r := range reqs {
		if err := s.getTree(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// remoteFolder checks a folder argument and drops its trailing "/".
func remoteFolder(arg string) (string, error) {
	dir := strings.TrimRight(arg, "/")
	if dir == "" {
		return "", fmt.Errorf("name a shared folder (list shows them), not %q", arg)
	}
	if err := line.CheckName(dir, 0); err != nil {
		return "", fmt.Errorf("%q is not a folder name: %v", arg, err)
	}
	return dir, nil
}

// getTree lists a remote folder, plans its download and starts it.
func (s *Shell) getTree(ctx context.Context, req treeReq) error {
	cl, err := s.client(ctx)
	if err != nil {
		return err
	}
	es, err := s.folderEntries(ctx, cl, req.remote+"/")
	if err != nil {
		return err
	}
	if len(es) == 0 {
		if files, _, err := cl.List(ctx, escapeGlob(req.remote), 1); err == nil && len(files) > 0 {
			return fmt.Errorf("%q is a file, not a folder: get %s", req.remote, quoteArg(req.remote))
		}
		return fmt.Errorf("no folder %q in the index (list %s/ lists a folder, search finds names)", req.remote, req.remote)
	}
	plan, err := planTree(ctx, req, s.pickEach(ctx, cl, es))
	if err != nil {
		return err
	}
	s.startTree(req, plan)
	return nil
}

// folderEntries lists every entry under prefix, at most MaxTreeFiles.
func (s *Shell) folderEntries(ctx context.Context, cl *masterclient.Client, prefix string) ([]store.Entry, error) {
	es, err := cl.ListFolder(ctx, prefix, MaxTreeFiles)
	var garbage *line.ProtocolError
	switch {
	case errors.Is(err, masterclient.ErrFolderTooBig):
		return nil, fmt.Errorf("%w: take a folder inside it", err)
	case errors.As(err, &garbage):
		// A name leading out of the folder, out of order, ...: the
		// whole listing is refused before anything is written.
		return nil, fmt.Errorf("refusing the master's listing of %q (nothing was fetched): %w", prefix, err)
	}
	return es, s.masterQueryError(err)
}

// treeGlob returns the entries a "**" glob matches: the folder it cannot
// leave (pathglob.Prefix) listed by pages, then matched here.
func (s *Shell) treeGlob(ctx context.Context, cl *masterclient.Client, glob string) ([]store.Entry, error) {
	if err := pathglob.Valid(glob); err != nil {
		return nil, fmt.Errorf("bad glob %q: %v", glob, err)
	}
	es, err := s.folderEntries(ctx, cl, pathglob.Prefix(glob))
	if err != nil {
		return nil, err
	}
	out := es[:0]
	for _, e := range es {
		if ok, _ := pathglob.Match(glob, e.Name); ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// planTree decides, for each entry of the remote folder, the name it is
// saved under and whether it is fetched, skipped (the same content is
// already there) or refused (this system cannot hold the name). An unsafe
// name, or a file under root reached through a link that leads out of it,
// refuses the whole folder before anything is fetched. Hashing what is
// already there reads it whole: Ctrl-C (ctx) stops between files.
func planTree(ctx context.Context, req treeReq, es []store.Entry) (treePlan, error) {
	var p treePlan
	root, err := os.OpenRoot(req.root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		root = nil // nothing is there yet
	case err != nil:
		return p, fmt.Errorf("opening %s: %w", req.root, err)
	default:
		defer root.Close()
	}
	var locals []string
	for _, e := range es {
		if err := ctx.Err(); err != nil {
			return p, fmt.Errorf("comparing with %s: %w (nothing was fetched)", req.root, err)
		}
		rel, ok := strings.CutPrefix(e.Name, req.remote+"/")
		if !ok {
			return p, fmt.Errorf("the master listed %q under %q", e.Name, req.remote+"/")
		}
		local := rel
		if req.under != "" {
			local = req.under + "/" + rel // not path.Join: a name is checked as sent, never cleaned
		}
		goos := cmp.Or(req.goos, runtime.GOOS)
		switch err := partfile.CheckNameFor(local, goos); {
		case errors.Is(err, partfile.ErrNotValidHere):
			p.refused = append(p.refused, fmt.Sprintf("%v; get it under another name: get %s --as NEWNAME", err, quoteArg(e.Name)))
			continue
		case err != nil:
			return p, fmt.Errorf("refusing %s/: %w; nothing was fetched", req.remote, err)
		}
		same, err := sameContent(root, local, e)
		if err != nil {
			return p, err
		}
		if same {
			p.skipped++
			continue
		}
		if root != nil && partfile.HasPartial(req.root, local) {
			p.resumes++
		}
		p.fetch = append(p.fetch, treeFile{e: e, local: local})
		locals = append(locals, local)
	}
	if a, b := caseTwins(req.root, locals); a != "" {
		return p, fmt.Errorf("%q and %q are one file name in %s (its file system ignores case): get them one by one with --as", a, b, req.root)
	}
	return p, nil
}

// sameContent reports whether root holds a regular file local with e's
// size and content hash. A path that leads out of root is an error.
func sameContent(root *os.Root, local string, e store.Entry) (bool, error) {
	if root == nil {
		return false, nil
	}
	f, err := root.Open(filepath.FromSlash(local))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case store.IsPathEscape(err):
		return false, fmt.Errorf("%w %q: leads outside the download folder (a symbolic link?); nothing was fetched", partfile.ErrUnsafeName, local)
	case err != nil:
		return false, nil // not a file we can read (a folder, no permission): fetched, and the download says why
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() != e.Size {
		return false, nil
	}
	h := store.NewHash()
	if _, err := io.Copy(h, f); err != nil {
		return false, fmt.Errorf("hashing %s: %w", local, err)
	}
	return store.FormatHash(h.Sum(nil)) == e.Hash, nil
}

// startTree starts a planned folder download: one job a file under one
// group, after a line saying what it does.
func (s *Shell) startTree(req treeReq, p treePlan) {
	for _, r := range p.refused {
		s.warn("%s %s/: %s", req.kind, req.remote, r)
	}
	if len(p.refused) > 0 && !req.mayFail {
		s.failed.Store(true)
	}
	where := filepath.Join(req.root, filepath.FromSlash(req.under))
	g := &jobGroup{Kind: req.kind, Name: req.remote + "/ → " + where, Skipped: p.skipped, Refused: len(p.refused)}
	var size int64
	for _, f := range p.fetch {
		size += f.e.Size
	}
	skipped := fmt.Sprintf("%d skipped (already here, same content)", p.skipped)
	if len(p.refused) > 0 {
		skipped += fmt.Sprintf(", %d refused", len(p.refused))
	}
	if len(p.fetch) == 0 {
		s.out("%s %s: nothing to fetch: %s\n", req.kind, g.Name, skipped)
		return
	}
	what := fmt.Sprintf("%s (%s) to fetch", plural(len(p.fetch), "file", "files"), humanBytes(size))
	if p.resumes > 0 {
		what += fmt.Sprintf(" (%d resume a partial file)", p.resumes)
	}
	what += ", " + skipped
	s.grp.start(g, len(p.fetch), func(i int) *Job {
		if i == 0 {
			s.out("%s g%d: %s: %s\n", req.kind, g.ID, g.Name, what)
		}
		f := p.fetch[i]
		j := s.startDownload(f.e, req.root, f.local, req.overwrite, req.mayFail)
		j.SetTotal(f.e.Size)
		return j
	})
}

// remoteFolders completes a folder name: every folder of the remote names
// that starts with cur, with its trailing "/".
func (s *Shell) remoteFolders(cur string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range s.remoteNames("") {
		for i := strings.IndexByte(n, '/'); i >= 0; i = nextSlash(n, i) {
			d := n[:i+1]
			if strings.HasPrefix(d, cur) && !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	return out
}

// nextSlash returns the index of the '/' after i in n, or -1.
func nextSlash(n string, i int) int {
	j := strings.IndexByte(n[i+1:], '/')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}
