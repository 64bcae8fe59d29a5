//go:build linux

package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// The LAN for mDNS discovery stories: `[!discnet] skip` skips a story
// where this process cannot build network namespaces (not root, no ip
// command), but fails it when FXSH_REQUIRE_NETNS=1, as CI sets.
// `discnet up` builds two namespaces joined by a veth pair, both ends
// created inside the namespaces (so no device ever exists in this
// machine's own namespace, and multicast cannot leave the pair):
//
//	$NSM  10.79.0.1/24  disc0 ── veth ── disc1  10.79.0.2/24  $NSC
//
// Commands run in them with `exec ip netns exec $NSM fxsh …`. The
// namespaces are named disc-<random>-m and disc-<random>-c, and removed
// (after killing by PID what still runs in them) when the story ends.

const (
	discAddrM = "10.79.0.1"
	discAddrC = "10.79.0.2"
)

func discnetCondition() (bool, error) {
	ok, why := canNetns()
	if !ok && os.Getenv("FXSH_REQUIRE_NETNS") == "1" {
		return false, fmt.Errorf("FXSH_REQUIRE_NETNS=1 but network namespaces are not available: %s", why)
	}
	return ok, nil
}

// canNetns probes by building and removing a namespace.
func canNetns() (bool, string) {
	if os.Geteuid() != 0 {
		return false, "not root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return false, "no ip command"
	}
	name := "disc-probe-" + randHex(3)
	if err := runIP("netns", "add", name); err != nil {
		return false, err.Error()
	}
	if err := runIP("netns", "del", name); err != nil {
		return false, err.Error()
	}
	return true, ""
}

func cmdDiscnet(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 || args[0] != "up" {
		ts.Fatalf("usage: discnet up")
	}
	id := randHex(3)
	nsm, nsc := "disc-"+id+"-m", "disc-"+id+"-c"
	ts.Defer(func() {
		for _, ns := range []string{nsm, nsc} {
			killNetns(ns)
			if err := runIP("netns", "del", ns); err != nil {
				ts.Logf("%v", err)
			}
		}
	})
	steps := [][]string{
		{"netns", "add", nsm},
		{"netns", "add", nsc},
		{"link", "add", "disc0", "netns", nsm, "type", "veth", "peer", "name", "disc1", "netns", nsc},
		{"-n", nsm, "link", "set", "lo", "up"},
		{"-n", nsc, "link", "set", "lo", "up"},
		{"-n", nsm, "addr", "add", discAddrM + "/24", "dev", "disc0"},
		{"-n", nsc, "addr", "add", discAddrC + "/24", "dev", "disc1"},
		{"-n", nsm, "link", "set", "disc0", "up"},
		{"-n", nsc, "link", "set", "disc1", "up"},
	}
	for _, st := range steps {
		if err := runIP(st...); err != nil {
			ts.Fatalf("%v", err)
		}
	}
	ts.Setenv("NSM", nsm)
	ts.Setenv("NSC", nsc)
	ts.Setenv("IPM", discAddrM)
	ts.Setenv("IPC", discAddrC)
}

// killNetns kills what still runs in a namespace of ours.
func killNetns(ns string) {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func runIP(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
