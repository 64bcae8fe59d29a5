package shell

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/fxshell/fxsh/netproto/discovery"
	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/netproto/master"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/memcat"
)

func masterCommands() []*cmdSpec {
	return []*cmdSpec{
		{
			name: "serve", group: "Index", usage: "serve master [ADDR] [--store etcd://HOST:PORT[,HOST:PORT...][/PREFIX]] [--ttl DURATION]",
			minArgs: 1, maxArgs: 6,
			summary: "start the master (the index) on ADDR (default :1234; port 0 picks one)",
			detail: "File servers register their files with the master; clients list and search it.\n" +
				"With --store etcd://… several masters share one catalog in etcd; the default is in memory.\n" +
				"Masters with the same etcd and PREFIX share a catalog; a different PREFIX (letters, digits,\n" +
				"- _ . and / between parts) keeps a separate one in the same etcd (keys under /PREFIX/fxsh/v1/).\n" +
				"Clients and file servers take several masters (--master h1:1234,h2:1234) and fail over in order.\n" +
				"--ttl (default 30s, whole seconds from 3s to 1h) is how long a silent file server stays\n" +
				"listed, also after its master died; file servers are asked to ping every TTL/3.\n" +
				"Without --key anyone on the network may join, and fxsh says so.",
			example: "serve master 127.0.0.1:1234 --store etcd://10.0.0.5:2379,10.0.0.6:2379/lab2 --ttl 15s",
			run:     cmdServe,
			complete: func(s *Shell, c *compCtx) []string {
				if c.argIndex == 0 {
					return []string{"master"}
				}
				return []string{"--store", "--ttl"}
			},
		},
		{
			name: "master", group: "Index", usage: "master [HOST:PORT[,HOST:PORT...] | auto]", maxArgs: 1,
			summary: "show or set the master(s) this shell talks to (tried in order)",
			detail: "With no --master, the shell finds the master on the LAN (mDNS, _fxsh._tcp) the first\n" +
				"time it needs one; master shows what was found, and master auto browses again.\n" +
				"Nothing found within 1s: 127.0.0.1:1234. FXSH_DISCOVERY=off turns discovery off;\n" +
				"FXSH_DISCOVERY=IFACE[,IFACE] keeps it (and serve master's announcement) to those interfaces.",
			example: "master 192.0.2.10:1234",
			run:     cmdMaster,
		},
	}
}

// masterRole is a master running in this process.
type masterRole struct {
	run      *master.Running
	announce *discovery.Announcer // nil when not announced on the LAN
	annNote  string
	cat      store.Catalog
	addr     string
	store    string
	keyed    bool
}

func (r *masterRole) Describe() string {
	key := "open network"
	if r.keyed {
		key = "key required"
	}
	return fmt.Sprintf("master listening on %s (catalog %s, %s; %s)", r.addr, r.store, key, r.annNote)
}

func (r *masterRole) Close(ctx context.Context) error {
	if r.announce != nil {
		r.announce.Close() // stop answering before the master goes
	}
	err := r.run.Close(ctx)
	if cerr := r.cat.Close(); err == nil {
		err = cerr
	}
	return err
}

// Limits of serve master's --ttl and of the etcd key prefix.
const (
	// MinMasterTTL is the shortest --ttl: file servers ping every TTL/3,
	// and etcd does not grant leases much shorter than 2 s.
	MinMasterTTL = 3 * time.Second
	// MaxMasterTTL is the longest --ttl: a dead file server's files stay
	// listed that long.
	MaxMasterTTL = time.Hour
	// MaxEtcdPrefix is the longest PREFIX in --store etcd://…/PREFIX.
	MaxEtcdPrefix = 128
)

// parseMasterTTL checks serve master's --ttl and returns the TTL and the
// heartbeat interval announced to peers (a third of it).
func parseMasterTTL(v string) (ttl, hb time.Duration, err error) {
	if v == "" {
		return line.DefaultTTL, line.DefaultHeartbeat, nil
	}
	ttl, err = time.ParseDuration(v)
	if err != nil {
		return 0, 0, fmt.Errorf("bad --ttl %q: want a duration such as 30s", v)
	}
	if ttl < MinMasterTTL || ttl > MaxMasterTTL || ttl%time.Second != 0 {
		return 0, 0, fmt.Errorf("bad --ttl %v: want whole seconds from %v to %v", ttl, MinMasterTTL, MaxMasterTTL)
	}
	return ttl, ttl / 3, nil
}

// parseEtcdPrefix turns the PREFIX of etcd://…/PREFIX into the catalog's
// key prefix: "" is the default layout, anything else is put in front of
// it, so that separate deployments (or test runs) can share one etcd.
func parseEtcdPrefix(p string) (string, error) {
	if p == "" {
		return etcdDefaultPrefix, nil
	}
	if len(p) > MaxEtcdPrefix {
		return "", fmt.Errorf("bad etcd prefix: %d bytes, at most %d", len(p), MaxEtcdPrefix)
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("bad etcd prefix %q: empty, . or .. part", p)
		}
		for _, r := range part {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
				return "", fmt.Errorf("bad etcd prefix %q: only letters, digits, - _ . and / between parts", p)
			}
		}
	}
	return "/" + p + etcdDefaultPrefix, nil
}

// errNoEtcd is what serve master --store etcd://… says in a build without
// the etcd catalog (-tags noetcd: catalog_noetcd.go).
var errNoEtcd = errors.New("this fxsh is built without the etcd catalog (-tags noetcd): " +
	"serve master without --store keeps the catalog in memory; the fxsh-etcd release archive, or go install, has etcd")

// openCatalog returns the catalog named by --store, whose registrations
// live for ttl.
func openCatalog(ctx context.Context, spec string, ttl time.Duration) (store.Catalog, string, error) {
	if spec == "" || spec == "memory" {
		return memcat.New(ttl), "in memory", nil
	}
	rest, ok := strings.CutPrefix(spec, "etcd://")
	if !ok || rest == "" {
		return nil, "", fmt.Errorf("bad --store %q: want etcd://HOST:PORT[,HOST:PORT...][/PREFIX] or memory", spec)
	}
	hosts, path, _ := strings.Cut(rest, "/")
	prefix, err := parseEtcdPrefix(path)
	if err != nil {
		return nil, "", err
	}
	var eps []string
	for _, e := range strings.Split(hosts, ",") {
		if e = strings.TrimSpace(e); e != "" {
			if _, _, err := net.SplitHostPort(e); err != nil {
				return nil, "", fmt.Errorf("bad etcd endpoint %q: %v", e, err)
			}
			eps = append(eps, e)
		}
	}
	if len(eps) == 0 {
		return nil, "", fmt.Errorf("bad --store %q: no etcd endpoint", spec)
	}
	name := "etcd " + strings.Join(eps, ",")
	if path != "" {
		name += "/" + path
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cat, err := openEtcdCatalog(ctx, eps, prefix, ttl)
	if errors.Is(err, errNoEtcd) {
		return nil, "", err
	}
	if err != nil {
		return nil, "", fmt.Errorf("connecting to %s: %w", name, err)
	}
	return cat, name, nil
}

func cmdServe(ctx context.Context, s *Shell, c *call) error {
	pos, f, err := c.flags(map[string]bool{"--store": true, "--ttl": true})
	if err != nil {
		return err
	}
	if len(pos) == 0 || pos[0] != "master" {
		return errors.New("usage: " + c.spec.usage)
	}
	ttl, hb, err := parseMasterTTL(f["--ttl"])
	if err != nil {
		return err
	}
	if len(pos) > 2 {
		return fmt.Errorf("one address, not %q", pos[1:])
	}
	if s.role("master") != nil {
		return errors.New("a master is already running in this shell (see status)")
	}
	addr := ":1234"
	if len(pos) == 2 {
		addr = pos[1]
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("bad address %q: want HOST:PORT, e.g. 127.0.0.1:1234 or :0", addr)
	}
	cat, storeName, err := openCatalog(ctx, f["--store"], ttl)
	if err != nil {
		return err
	}
	var key []byte
	if s.opts.Key != "" {
		key = []byte(s.opts.Key)
	}
	run, err := master.Start(ctx, master.Config{
		Addr:      addr,
		Catalog:   cat,
		Key:       key,
		TTL:       ttl,
		Heartbeat: hb,
		Trace:     s.traceTCP("master"),
		OnEvent:   s.masterEvent,
	})
	if err != nil {
		cat.Close()
		return err
	}
	r := &masterRole{run: run, cat: cat, addr: run.Addr, store: storeName, keyed: key != nil}
	if la, err := net.ResolveTCPAddr("tcp", run.Addr); err == nil { // a literal address: no lookup
		r.announce, r.annNote = s.announceMaster(la, key != nil, storeName)
	}
	s.addRole("master", r)
	note := "no key: open network, anyone may join"
	if key != nil {
		note = "key required"
	}
	s.out("master listening on %s (%s; catalog %s)\n", r.addr, note, storeName)
	s.out("master: %s\n", r.annNote)
	s.mu.Lock()
	given := s.opts.MasterGiven
	s.mu.Unlock()
	if !given {
		// Without --master, this shell's own master is the one to use:
		// no need to look for one.
		s.disc.mu.Lock()
		s.disc.done, s.disc.own, s.disc.chosen, s.disc.found = true, true, nil, nil
		s.disc.mu.Unlock()
		s.useMasters([]string{dialable(run.Addr)}, false)
	}
	return nil
}

// masterEvent reports peers joining and leaving the master in this shell.
func (s *Shell) masterEvent(ev master.Event) {
	who := ev.Addr
	if ev.Name != "" {
		who += " (" + ev.Name + ")"
	}
	switch ev.Kind {
	case master.PeerRegistered:
		s.notify(fmt.Sprintf("%s %s %s registered: %s", s.pal.hi.Sprint("master:"), ev.Role, who, plural(ev.Files, "file", "files")))
	case master.PeerLeft:
		reason := ev.Reason
		if reason == "" {
			reason = "left"
		}
		s.notify(fmt.Sprintf("%s %s %s gone (%s)", s.pal.hi.Sprint("master:"), ev.Role, who, reason))
	case master.ConnRefused:
		s.notify(fmt.Sprintf("%s refused %s: %s", s.pal.warn.Sprint("master:"), ev.Remote, ev.Reason))
	}
}

func cmdMaster(ctx context.Context, s *Shell, c *call) error {
	if len(c.args) == 0 {
		return s.cmdMasterShow(ctx)
	}
	if c.args[0] == "auto" {
		return s.cmdMasterAuto(ctx)
	}
	var list []string
	for _, a := range strings.Split(c.args[0], ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("bad master address %q: want HOST:PORT", a)
		}
		list = append(list, a)
	}
	if len(list) == 0 {
		return errors.New("no address given")
	}
	s.mu.Lock()
	s.opts.Masters = list
	s.opts.MasterGiven = true
	s.mu.Unlock()
	s.masterChanged()
	return nil
}

// dialable turns a listening address into one a local client can dial:
// an unspecified host becomes loopback.
func dialable(a string) string {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return a
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if ip != nil && ip.To4() == nil {
			host = "::1"
		} else {
			host = "127.0.0.1"
		}
	}
	return net.JoinHostPort(host, port)
}

// useMasters points the shell at masters (given: as if --master had named
// them, so that serve master leaves them alone) and returns what it used
// before.
func (s *Shell) useMasters(masters []string, given bool) (prev []string, prevGiven bool) {
	s.mu.Lock()
	prev, prevGiven = s.opts.Masters, s.opts.MasterGiven
	s.opts.Masters, s.opts.MasterGiven = masters, given
	s.mu.Unlock()
	s.dropClient()
	return prev, prevGiven
}

// masters returns the masters in use.
func (s *Shell) masters() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.opts.Masters...)
}

// masterChanged drops connections to the old master(s), so the next query
// or registration uses the new ones.
func (s *Shell) masterChanged() {
	s.dropClient()
}
