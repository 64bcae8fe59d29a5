//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The lossy path: two network namespaces, each holding one TUN device whose
// other end is a file descriptor in the benchmark, joined by the forwarder.
// The server side (file servers, the master) lives in NSServer, clients in
// NSClient; the data direction is server → client. Everything here is ours:
// the namespaces, the devices and the /30 between them. Nothing is routed to
// or from any other address.
const (
	NSServer   = "fxbench-a"
	NSClient   = "fxbench-b"
	tunServer  = "fxbtun-a"
	tunClient  = "fxbtun-b"
	AddrServer = "10.77.0.1"
	AddrClient = "10.77.0.2"
	pathPrefix = "/30"
	// PathMTU is the MTU of both TUN devices: fxsh must work with
	// 1500-byte packets on this path.
	PathMTU = 1500
	// pathTxQueue is the TUN devices' queue (packets waiting for the
	// forwarder to read), long enough that a burst is never cut there.
	pathTxQueue = 10000
)

// openTUN creates a TUN device (IP packets, no packet-info header) and
// returns its descriptor; the device lives until the descriptor is closed.
func openTUN(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("tun %s: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("creating tun %s: %w", name, err)
	}
	return fd, nil
}

// ip runs the ip command.
func ip(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// inNS prefixes argv so it runs in namespace ns ("" runs it here).
func inNS(ns string, argv ...string) []string {
	if ns == "" {
		return argv
	}
	return append([]string{"ip", "netns", "exec", ns}, argv...)
}

// lossyPath is the running path.
type lossyPath struct {
	fds [2]int
	fwd *forwarder
}

// removeNamespaces deletes our namespaces, first killing by PID whatever
// still runs in them (left by a crashed run of this benchmark: nothing
// else starts processes in namespaces with these names).
func removeNamespaces(ctx context.Context) error {
	var errs []error
	for _, ns := range []string{NSServer, NSClient} {
		out, err := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
		if err != nil {
			continue // no such namespace
		}
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
		if err := ip(ctx, "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// setupPath builds the path with the given one-way delay and no loss yet.
func setupPath(ctx context.Context, delay time.Duration, seed uint64) (_ *lossyPath, err error) {
	if err := removeNamespaces(ctx); err != nil {
		return nil, fmt.Errorf("removing old namespaces: %w", err)
	}
	p := &lossyPath{fds: [2]int{-1, -1}}
	defer func() {
		if err != nil {
			p.close(context.WithoutCancel(ctx))
		}
	}()
	sides := []struct{ ns, tun, addr string }{{NSServer, tunServer, AddrServer}, {NSClient, tunClient, AddrClient}}
	for i, s := range sides {
		if err := ip(ctx, "netns", "add", s.ns); err != nil {
			return nil, err
		}
		if p.fds[i], err = openTUN(s.tun); err != nil {
			return nil, err
		}
		steps := [][]string{
			{"link", "set", s.tun, "netns", s.ns},
			{"-n", s.ns, "link", "set", "lo", "up"},
			{"-n", s.ns, "link", "set", s.tun, "mtu", strconv.Itoa(PathMTU), "txqueuelen", strconv.Itoa(pathTxQueue)},
			{"-n", s.ns, "addr", "add", s.addr + pathPrefix, "dev", s.tun},
			{"-n", s.ns, "link", "set", s.tun, "up"},
		}
		for _, st := range steps {
			if err := ip(ctx, st...); err != nil {
				return nil, err
			}
		}
	}
	if p.fwd, err = newForwarder(p.fds[0], p.fds[1], delay, seed); err != nil {
		return nil, err
	}
	p.fwd.start()
	return p, nil
}

// close stops the forwarder, closes the devices and removes the
// namespaces.
func (p *lossyPath) close(ctx context.Context) error {
	var errs []error
	if p.fwd != nil {
		errs = append(errs, p.fwd.close())
	}
	for i, fd := range p.fds {
		if fd >= 0 {
			unix.Close(fd)
			p.fds[i] = -1
		}
	}
	errs = append(errs, removeNamespaces(ctx))
	return errors.Join(errs...)
}
