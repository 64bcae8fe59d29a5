package shell

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fxshell/fxsh/netproto/discovery"
)

// Finding the master on the LAN (netproto/discovery). A shell given no
// --master (nor FXSH_MASTER), or --master auto, browses for _fxsh._tcp the
// first time it needs a master, not at start: a script that never talks
// to a master never waits. One answer is used and named; several are
// listed and the user chooses (interactive) or the command fails with the
// list (scripts); none within discovery.DefaultTimeout falls back to
// DefaultMaster, and says so. FXSH_DISCOVERY=off turns both browsing and
// announcing off (the test stories set it: they never multicast on the
// machine's own network); FXSH_DISCOVERY=IFACE[,IFACE...] keeps both to
// those interfaces (a laptop whose VPN or container bridge is not the
// classroom).

// discoveryOff is FXSH_DISCOVERY's value that turns discovery off.
const discoveryOff = "off"

// discoveryState is what the shell learned from browsing.
type discoveryState struct {
	mu sync.Mutex // held for a whole browse, so one runs at a time

	// Protected by mu:
	done    bool                                              // browsed since the master was last left to discovery
	own     bool                                              // no browse: this shell serves the master it uses
	err     error                                             // the browse failed (no socket, a bad FXSH_DISCOVERY)
	found   []discovery.Master                                // the masters that answered
	chosen  *discovery.Master                                 // the one in use, if any
	elapsed time.Duration                                     // how long the browse took
	browse  func(context.Context) ([]discovery.Master, error) // discovery.Browse; tests replace it
}

func newDiscoveryState() *discoveryState {
	return &discoveryState{browse: func(ctx context.Context) ([]discovery.Master, error) {
		ifaces, err := discoveryInterfaces()
		if err != nil {
			return nil, err
		}
		return discovery.Browse(ctx, discovery.BrowseConfig{Interfaces: ifaces})
	}}
}

// discoveryInterfaces reads FXSH_DISCOVERY: "" or "on" is every
// interface (nil), a comma-separated list names them.
func discoveryInterfaces() ([]net.Interface, error) {
	v := strings.TrimSpace(os.Getenv("FXSH_DISCOVERY"))
	if v == "" || v == "on" {
		return nil, nil
	}
	var out []net.Interface
	for _, name := range strings.Split(v, ",") {
		ifc, err := net.InterfaceByName(strings.TrimSpace(name))
		if err != nil {
			return nil, fmt.Errorf("FXSH_DISCOVERY=%s: no interface named %q (want on, off or interface names)", v, name)
		}
		out = append(out, *ifc)
	}
	return out, nil
}

// resolveMasters returns the masters to dial, browsing first when the
// master is left to discovery and no browse has chosen one yet.
func (s *Shell) resolveMasters(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	auto := s.opts.Discover && !s.opts.MasterGiven
	s.mu.Unlock()
	if !auto {
		return s.masters(), nil
	}
	d := s.disc
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done {
		return s.masters(), nil
	}
	if err := s.browseLocked(ctx); err != nil {
		return nil, err
	}
	return s.masters(), nil
}

// browseLocked browses and sets the masters; d.mu is held.
func (s *Shell) browseLocked(ctx context.Context) error {
	d := s.disc
	start := time.Now()
	found, err := d.browse(ctx)
	d.elapsed, d.err = time.Since(start), err
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		// No mDNS socket (port 5353 held without reuse, no network):
		// the fallback still lets a local master be used.
		s.ui.PrintErr(s.epal.warn.Sprint("warning: ") + fmt.Sprintf("mDNS discovery failed (%v); using %s\n", err, DefaultMaster))
		s.useDiscovered(nil, []string{DefaultMaster})
		return nil
	}
	d.found = found
	switch len(found) {
	case 0:
		s.ui.PrintErr(s.epal.dim.Sprint(fmt.Sprintf("fxsh: no master answered on mDNS (%s) within %v; using %s", discovery.Service, discovery.DefaultTimeout, DefaultMaster)) + "\n")
		s.useDiscovered(nil, []string{DefaultMaster})
		return nil
	case 1:
		m := found[0]
		s.ui.PrintErr(s.epal.dim.Sprint(fmt.Sprintf("fxsh: using master %s found on mDNS in %s: %q (%s)", m.Addr, roundMS(m.After), m.Instance, m.Info)) + "\n")
		s.warnKeyMismatch(m)
		s.useDiscovered(&m, []string{m.Addr.String()})
		return nil
	}
	list := listMasters(found)
	if !s.ui.IsTerminal() {
		return &severalError{found}
	}
	s.out("%d masters answer on mDNS:\n%s", len(found), list)
	m, err := s.askMaster(found)
	if err != nil {
		return err
	}
	s.out("using master %s\n", m.Addr)
	s.warnKeyMismatch(m)
	s.useDiscovered(&m, []string{m.Addr.String()})
	return nil
}

// severalError: several masters answered and a script cannot choose.
type severalError struct{ found []discovery.Master }

func (e *severalError) Error() string {
	return fmt.Sprintf("%d masters answer on mDNS; choose one with --master HOST:PORT or the master command:\n%s",
		len(e.found), strings.TrimSuffix(listMasters(e.found), "\n"))
}

// askMaster asks which of several masters to use.
func (s *Shell) askMaster(found []discovery.Master) (discovery.Master, error) {
	// The question is printed as well as prompted: the prompt's job
	// summary may be redrawn while the user thinks.
	s.out("which master? type its number (1-%d)\n", len(found))
	s.ui.SetPrompt(fmt.Sprintf("which master? [1-%d] ", len(found)))
	defer s.ui.SetPrompt(s.prompt())
	for tries := 0; tries < 3; tries++ {
		line, err := s.ui.ReadLine()
		if err != nil {
			return discovery.Master{}, errors.New("no master chosen")
		}
		n, err := strconv.Atoi(strings.TrimSpace(line))
		if err == nil && n >= 1 && n <= len(found) {
			return found[n-1], nil
		}
		s.ui.PrintErr(fmt.Sprintf("type a number from 1 to %d\n", len(found)))
	}
	return discovery.Master{}, errors.New("no master chosen")
}

// warnKeyMismatch says when the master's key setting and ours differ: the
// handshake will fail, and this says why before it does.
func (s *Shell) warnKeyMismatch(m discovery.Master) {
	switch {
	case m.Info.KeyRequired && s.opts.Key == "":
		s.warn("master %s requires a key; give it with --key or FXSH_KEY", m.Addr)
	case !m.Info.KeyRequired && s.opts.Key != "":
		s.warn("master %s says it has no key; a master that cannot prove ours is refused", m.Addr)
	}
}

// useDiscovered records the browse's outcome and makes list the masters.
func (s *Shell) useDiscovered(m *discovery.Master, list []string) {
	s.disc.chosen = m
	s.disc.done, s.disc.own = true, false
	s.mu.Lock()
	s.opts.Masters = list
	s.mu.Unlock()
	s.dropClient()
}

// listMasters numbers masters one a line.
func listMasters(found []discovery.Master) string {
	var b strings.Builder
	for i, m := range found {
		fmt.Fprintf(&b, "  %d. %s  %q (%s; answered in %s)\n", i+1, m.Addr, m.Instance, m.Info, roundMS(m.After))
	}
	return b.String()
}

// roundMS shows a discovery time in milliseconds: a tenth under 10 ms (an
// answer on one link takes well under one), whole ones above.
func roundMS(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}

// cmdMasterShow is `master` with no argument: the masters in use and, when
// they were left to discovery, what it found (browsing now if it has not).
func (s *Shell) cmdMasterShow(ctx context.Context) error {
	masters, err := s.resolveMasters(ctx)
	var several *severalError
	if errors.As(err, &several) {
		// Show them on standard output too: this is what master is for.
		s.out("discovery: %d masters answered on mDNS:\n%s", len(several.found), listMasters(several.found))
		return err
	}
	if err != nil {
		return err
	}
	s.out("%s\n", strings.Join(masters, ","))
	s.mu.Lock()
	auto, given := s.opts.Discover, s.opts.MasterGiven
	s.mu.Unlock()
	if given || !auto {
		return nil
	}
	d := s.disc
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.done {
		return nil
	}
	switch {
	case d.own:
		s.out("discovery: not needed, this shell serves the master it uses\n")
	case d.err != nil:
		s.out("discovery: failed (%v); %s is the fallback\n", d.err, DefaultMaster)
	case len(d.found) == 0:
		s.out("discovery: no master answered on mDNS within %v; %s is the fallback\n", discovery.DefaultTimeout, DefaultMaster)
	default:
		s.out("discovery: %d master(s) answered on mDNS (browsing took %s):\n%s", len(d.found), roundMS(d.elapsed), listMasters(d.found))
	}
	return nil
}

// masterStatus is the master line of `status`: the masters, and how they
// were found.
func (s *Shell) masterStatus() string {
	s.mu.Lock()
	list, auto := strings.Join(s.opts.Masters, ", "), s.opts.Discover && !s.opts.MasterGiven
	s.mu.Unlock()
	if !auto {
		return list
	}
	d := s.disc
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.own:
		return list + " (this shell's own)"
	case !d.done:
		return "not chosen yet: looked for on the LAN (mDNS) when first needed"
	case d.chosen != nil:
		return fmt.Sprintf("%s (found on mDNS: %q)", list, d.chosen.Instance)
	}
	return list
}

// cmdMasterAuto is `master auto`: leave the master to discovery and browse
// now.
func (s *Shell) cmdMasterAuto(ctx context.Context) error {
	if os.Getenv("FXSH_DISCOVERY") == discoveryOff {
		return errors.New("discovery is off (FXSH_DISCOVERY=off)")
	}
	s.mu.Lock()
	s.opts.Discover, s.opts.MasterGiven = true, false
	s.mu.Unlock()
	s.disc.mu.Lock()
	s.disc.done, s.disc.own = false, false
	s.disc.mu.Unlock()
	return s.cmdMasterShow(ctx)
}

// announceMaster announces a master listening on addr, unless it listens
// on loopback only or discovery is off; it returns the announcer (nil if
// none) and a note for the user.
func (s *Shell) announceMaster(addr net.Addr, keyed bool, catalog string) (*discovery.Announcer, string) {
	if os.Getenv("FXSH_DISCOVERY") == discoveryOff {
		return nil, "not announced (FXSH_DISCOVERY=off)"
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return nil, fmt.Sprintf("not announced: %v", err)
	}
	ifaces, err := discoveryInterfaces()
	if err != nil {
		return nil, fmt.Sprintf("not announced on the LAN: %v", err)
	}
	kind := discovery.CatalogMemory
	if strings.HasPrefix(catalog, "etcd") {
		kind = discovery.CatalogEtcd
	}
	a, err := discovery.Announce(discovery.AnnounceConfig{
		Addr:       ap,
		Info:       discovery.Info{Version: Version, KeyRequired: keyed, Catalog: kind},
		Interfaces: ifaces,
	})
	switch {
	case errors.Is(err, discovery.ErrLoopback):
		return nil, "not announced on the LAN: it listens on loopback only"
	case err != nil:
		return nil, fmt.Sprintf("not announced on the LAN: %v", err)
	}
	return a, fmt.Sprintf("announced on the LAN as %q (%s)", a.Instance(), discovery.Service)
}
