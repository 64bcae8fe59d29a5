//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Facts describe the machine a run measured.
type Facts struct {
	NProc      int      `json:"nproc"`
	CPU        string   `json:"cpu"`
	Kernel     string   `json:"kernel"`
	GoVersion  string   `json:"go_version"`
	LoadAvg    string   `json:"loadavg_at_start"`
	MemTotal   string   `json:"mem_total"`
	DataFS     string   `json:"data_fs"`
	CCs        []string `json:"tcp_congestion_available"`
	DefaultCC  string   `json:"tcp_congestion_default"`
	TCPRmem    string   `json:"tcp_rmem"`
	TCPWmem    string   `json:"tcp_wmem"`
	FxshCommit string   `json:"fxsh_commit"`
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

func firstLineWith(path, prefix string) string {
	f, err := os.Open(path)
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
		}
	}
	return "?"
}

// fsName names the file system type of a folder, so a run on tmpfs can be
// refused: the issue wants files on disk.
func fsName(dir string) (string, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "?", false
	}
	switch st.Type {
	case unix.TMPFS_MAGIC:
		return "tmpfs", true
	case unix.RAMFS_MAGIC:
		return "ramfs", true
	case unix.EXT4_SUPER_MAGIC:
		return "ext4", false
	case unix.XFS_SUPER_MAGIC:
		return "xfs", false
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs", false
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs", false
	}
	return fmt.Sprintf("fs magic %#x", st.Type), false
}

func gatherFacts(ctx context.Context, moduleRoot, dataDir string) Facts {
	var u unix.Utsname
	kernel := "?"
	if unix.Uname(&u) == nil {
		kernel = unix.ByteSliceToString(u.Release[:])
	}
	f := Facts{
		NProc:     runtime.NumCPU(),
		CPU:       firstLineWith("/proc/cpuinfo", "model name"),
		Kernel:    kernel,
		GoVersion: runtime.Version(),
		LoadAvg:   readTrim("/proc/loadavg"),
		MemTotal:  firstLineWith("/proc/meminfo", "MemTotal"),
		CCs:       strings.Fields(readTrim("/proc/sys/net/ipv4/tcp_available_congestion_control")),
		DefaultCC: readTrim("/proc/sys/net/ipv4/tcp_congestion_control"),
		TCPRmem:   readTrim("/proc/sys/net/ipv4/tcp_rmem"),
		TCPWmem:   readTrim("/proc/sys/net/ipv4/tcp_wmem"),
	}
	f.DataFS, _ = fsName(dataDir)
	if out, err := exec.CommandContext(ctx, "go", "version").Output(); err == nil {
		f.GoVersion = strings.TrimSpace(string(out))
	}
	cmd := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty")
	cmd.Dir = moduleRoot
	if out, err := cmd.Output(); err == nil {
		f.FxshCommit = string(bytes.TrimSpace(out))
	}
	return f
}

func (f Facts) print(w io.Writer) {
	fmt.Fprintf(w, "machine: nproc=%d cpu=%q mem=%s\n", f.NProc, f.CPU, f.MemTotal)
	fmt.Fprintf(w, "kernel %s; %s; load %s\n", f.Kernel, f.GoVersion, f.LoadAvg)
	fmt.Fprintf(w, "tcp congestion available: %s (default %s); tcp_rmem %s; tcp_wmem %s\n",
		strings.Join(f.CCs, " "), f.DefaultCC, f.TCPRmem, f.TCPWmem)
	fmt.Fprintf(w, "data on %s; fxsh %s\n", f.DataFS, f.FxshCommit)
}

func (f Facts) hasCC(cc string) bool {
	for _, c := range f.CCs {
		if c == cc {
			return true
		}
	}
	return false
}

// givenFxsh describes a binary given with -fxsh: the commit its --version
// names, or, when it names none (built outside a checkout, or with
// -buildvcs=false), that it is unknown beside the tree's own commit.
func givenFxsh(ctx context.Context, path, treeCommit string) string {
	commit := "unknown"
	if out, err := exec.CommandContext(ctx, path, "--version").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if c, ok := strings.CutPrefix(strings.TrimSpace(line), "commit "); ok {
				commit = strings.TrimSpace(c)
			}
		}
	}
	if commit == "unknown" {
		return fmt.Sprintf("%s (its commit unknown; this tree at %s)", path, treeCommit)
	}
	return fmt.Sprintf("%s at %s", path, commit)
}
