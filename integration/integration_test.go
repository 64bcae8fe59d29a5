// Package integration runs fxsh end to end: testscript stories in testdata/
// (one file per user story) run the real fxsh binary with piped scripts and
// -c, on loopback sockets and real files.
package integration

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/fxshell/fxsh/shell"
	"github.com/fxshell/fxsh/store/partfile"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"fxsh":      func() { os.Exit(shell.Main()) },
		"mdnswatch": func() { os.Exit(mdnsWatch()) },
	})
}

func TestStories(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			e.Setenv("NO_COLOR", "")
			e.Setenv("XDG_STATE_HOME", e.WorkDir+"/.state")
			e.Setenv("XDG_CACHE_HOME", e.WorkDir+"/.cache")
			// The start-up file is the story's own (none unless it
			// writes one), and no story multicasts on this machine's
			// network: mDNS discovery is off except in the namespaces
			// that the discovery story builds (netns.go).
			e.Setenv("XDG_CONFIG_HOME", e.WorkDir+"/.config")
			// The same folders where Windows and macOS look for them
			// (testscript's HOME is /no-home).
			e.Setenv("APPDATA", e.WorkDir+"/.config")
			e.Setenv("LOCALAPPDATA", e.WorkDir+"/.cache")
			e.Setenv("FXSH_DISCOVERY", "off")
			if os.Getenv("GORACE") == "" {
				// A race-built fxsh otherwise sleeps 1 s at every exit
				// (the detector's default atexit_sleep_ms), seconds per
				// story; a race is still reported, and fails the story
				// with exit status 66.
				e.Setenv("GORACE", "atexit_sleep_ms=0")
			}
			setupEtcd(e)
			setupTshark(e)
			return nil
		},
		Condition: condition,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"freeport":   cmdFreeport,
			"json":       cmdJSON,
			"waitport":   cmdWaitport,
			"poll":       cmdPoll,
			"rawtcp":     cmdRawTCP,
			"mkfile":     cmdMkfile,
			"sleep":      cmdSleep,
			"mounttmpfs": cmdMountTmpfs,
			"fxstate":    cmdFxstate,
			"overwrite":  cmdOverwrite,
			"shorthash":  cmdShorthash,
			"linecheck":  cmdLinecheck,
			"discnet":    cmdDiscnet,
			"rot":        cmdRot,
			"fakemaster": cmdFakemaster, // fakemaster_test.go
		},
	})
}

// freeport NAME... sets each NAME to a loopback port free for both TCP and UDP.
func cmdFreeport(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: freeport NAME...")
	}
	for _, name := range args {
		for tries := 0; ; tries++ {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			ts.Check(err)
			port := l.Addr().(*net.TCPAddr).Port
			u, uerr := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
			l.Close()
			if uerr == nil {
				u.Close()
				ts.Setenv(name, strconv.Itoa(port))
				break
			}
			if tries > 50 {
				ts.Fatalf("no free port: %v", uerr)
			}
		}
	}
}

// waitport HOST:PORT [TIMEOUT] waits until a TCP listener accepts there.
func cmdWaitport(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: waitport HOST:PORT [TIMEOUT]")
	}
	timeout := 20 * time.Second
	if len(args) == 2 {
		d, err := time.ParseDuration(args[1])
		ts.Check(err)
		timeout = d
	}
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", args[0], time.Second)
		if err == nil {
			c.Close()
			if neg {
				if time.Now().After(deadline) {
					ts.Fatalf("%s still accepting after %v", args[0], timeout)
				}
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return
		}
		if neg {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s not accepting after %v: %v", args[0], timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// poll TIMEOUT REGEXP CMD ARGS... runs CMD (as exec would) until its
// standard output matches REGEXP (with !, until it no longer matches), or
// fails after TIMEOUT. It is how a story waits for the network to settle
// without sleeping a fixed time.
func cmdPoll(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 3 {
		ts.Fatalf("usage: poll [!] TIMEOUT REGEXP CMD ARGS...")
	}
	timeout, err := time.ParseDuration(args[0])
	ts.Check(err)
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	deadline := time.Now().Add(timeout)
	for {
		ts.Exec(args[2], args[3:]...)
		out := ts.ReadFile("stdout")
		if re.MatchString(out) != neg {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("after %v, %s output still %s %q:\n%s", timeout, strings.Join(args[2:], " "),
				map[bool]string{false: "does not match", true: "matches"}[neg], args[1], out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rawtcp ADDR FILE sends FILE's bytes (as they are: a hostile peer's lines)
// to a TCP listener, half-closes, and writes everything it answers, until it
// closes or stays silent for two seconds, to stdout.
func cmdRawTCP(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: rawtcp ADDR FILE")
	}
	c, err := net.DialTimeout("tcp", args[0], 5*time.Second)
	ts.Check(err)
	defer c.Close()
	data := ts.ReadFile(args[1])
	// Send line by line, reading answers as they come, so a peer that
	// closes after an error does not make the rest of the writes fail.
	done := make(chan string)
	go func() {
		var b strings.Builder
		r := bufio.NewReader(c)
		for {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			line, err := r.ReadString('\n')
			b.WriteString(line)
			if err != nil {
				if err != io.EOF && !strings.Contains(err.Error(), "timeout") && !strings.Contains(err.Error(), "reset") {
					b.WriteString("read error: " + err.Error() + "\n")
				}
				break
			}
		}
		done <- b.String()
	}()
	for _, l := range strings.SplitAfter(data, "\n") {
		if _, err := c.Write([]byte(l)); err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond) // one request at a time, as a person would type them
	}
	out := <-done
	ts.Stdout().Write([]byte(out))
}

// mkfile PATH SIZE [SEED] writes SIZE pseudo-random bytes (k, M suffixes:
// KiB, MiB), the same for the same seed.
func cmdMkfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: mkfile PATH SIZE [SEED]")
	}
	sz := args[1]
	mult := int64(1)
	switch {
	case strings.HasSuffix(sz, "k"):
		mult, sz = 1<<10, strings.TrimSuffix(sz, "k")
	case strings.HasSuffix(sz, "M"):
		mult, sz = 1<<20, strings.TrimSuffix(sz, "M")
	}
	n, err := strconv.ParseInt(sz, 10, 64)
	ts.Check(err)
	seed := uint64(1)
	if len(args) == 3 {
		seed, err = strconv.ParseUint(args[2], 10, 64)
		ts.Check(err)
	}
	r := mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	buf := make([]byte, n*mult)
	for i := 0; i+8 <= len(buf); i += 8 {
		binary.LittleEndian.PutUint64(buf[i:], r.Uint64())
	}
	path := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(filepath.Dir(path), 0o755))
	ts.Check(os.WriteFile(path, buf, 0o644))
}

// sleep DURATION pauses the story: only to let data flow for a while, never
// to wait for something to start (use waitport or poll for that).
func cmdSleep(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sleep DURATION")
	}
	d, err := time.ParseDuration(args[0])
	ts.Check(err)
	if d > 10*time.Second {
		ts.Fatalf("sleep %v: at most 10s", d)
	}
	time.Sleep(d)
}

// condition answers the stories' own conditions: [etcd] and [tmpfs].
func condition(cond string) (bool, error) {
	switch cond {
	case "etcd":
		return etcdCondition(cond)
	case "tmpfs":
		return canMountTmpfs(), nil
	case "discnet":
		return discnetCondition()
	case "tshark":
		return tsharkCondition()
	}
	return false, fmt.Errorf("unknown condition %q", cond)
}

// etcd in stories: `[!etcd] skip` skips a story when no etcd is running
// (FXSH_ETCD_ENDPOINTS, comma-separated, as store/etcdcat's tests use),
// but fails it when FXSH_REQUIRE_ETCD=1, as CI sets. Each story run gets
// the endpoints and its own key prefix, so that runs sharing one etcd do
// not see each other: --store etcd://$FXSH_ETCD_ENDPOINTS/$ETCD_PREFIX.
// (Registrations are leased, so nothing is left under the prefix once
// the story's TTLs have passed.)

func etcdCondition(cond string) (bool, error) {
	if os.Getenv("FXSH_ETCD_ENDPOINTS") != "" {
		return true, nil
	}
	if os.Getenv("FXSH_REQUIRE_ETCD") == "1" {
		return false, fmt.Errorf("FXSH_REQUIRE_ETCD=1 but FXSH_ETCD_ENDPOINTS is not set (start one with .ci/etcd.sh start DIR)")
	}
	return false, nil
}

func setupEtcd(e *testscript.Env) {
	var b [6]byte
	rand.Read(b[:])
	e.Setenv("FXSH_ETCD_ENDPOINTS", os.Getenv("FXSH_ETCD_ENDPOINTS"))
	e.Setenv("ETCD_PREFIX", "fxsh-story/"+hex.EncodeToString(b[:]))
}

// fxstate STATE [PART SOURCE] prints what a download's state file records:
// size, chunk size, and how many chunks (and bytes) it claims are on disk.
// Given the partial file and the original, it also checks that every chunk
// the state claims holds the original's bytes, and fails if one does not:
// a state that claims more than is on disk is a damaged download.
func cmdFxstate(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 && len(args) != 3 {
		ts.Fatalf("usage: fxstate STATE [PART SOURCE]")
	}
	for i := range args {
		args[i] = ts.MkAbs(args[i])
	}
	err := fxstate(args, ts.Stdout())
	switch {
	case err != nil && !neg:
		ts.Fatalf("fxstate: %v", err)
	case err == nil && neg:
		ts.Fatalf("fxstate: unexpected success")
	case err != nil:
		fmt.Fprintf(ts.Stderr(), "fxstate: %v\n", err)
	}
}

func fxstate(args []string, stdout io.Writer) error {
	b, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	st, n, err := partfile.ParseState(b)
	if err != nil {
		return fmt.Errorf("reading state: %w", err)
	}
	if n != len(b) {
		return fmt.Errorf("reading state: %d trailing bytes", len(b)-n)
	}
	have, held := 0, int64(0)
	for i := range st.NumChunks() {
		if st.Have[i/8]&(1<<(i%8)) != 0 {
			have++
			held += chunkLen(st, i)
		}
	}
	fmt.Fprintf(stdout, "size=%d chunk=%d chunks=%d have=%d bytes=%d\n", st.Size, st.ChunkSize, st.NumChunks(), have, held)
	if len(args) == 1 {
		return nil
	}
	part, err := os.ReadFile(args[1])
	if err != nil {
		return err
	}
	src, err := os.ReadFile(args[2])
	if err != nil {
		return err
	}
	if int64(len(part)) != st.Size || int64(len(src)) != st.Size {
		return fmt.Errorf("sizes: state %d, partial file %d, original %d", st.Size, len(part), len(src))
	}
	for i := range st.NumChunks() {
		if st.Have[i/8]&(1<<(i%8)) == 0 {
			continue
		}
		off := int64(i) * int64(st.ChunkSize)
		end := off + chunkLen(st, i)
		if !bytes.Equal(part[off:end], src[off:end]) {
			return fmt.Errorf("chunk %d (bytes %d-%d): the state says it is on disk, the partial file holds other bytes", i, off, end)
		}
	}
	fmt.Fprintf(stdout, "verified %d chunks\n", have)
	return nil
}

// chunkLen is chunk i's length: the last one may be short.
func chunkLen(st partfile.State, i int) int64 {
	return min(int64(st.ChunkSize), st.Size-int64(i)*int64(st.ChunkSize))
}

// TestFxstate checks the stories' state checker: it passes a state whose
// chunks are all in the partial file, and fails one that claims a chunk
// whose bytes are not there, or whose sizes disagree.
func TestFxstate(t *testing.T) {
	const cs = 1000
	src := make([]byte, 4*cs+10) // 5 chunks, the last one short
	for i := range src {
		src[i] = byte(i*7 + 1)
	}
	good := bytes.Clone(src)
	clear(good[2*cs : 3*cs]) // chunk 2 has not arrived
	bad := bytes.Clone(good)
	bad[4*cs+3] ^= 1 // chunk 4 is damaged
	have := []byte{0b11011}
	tests := []struct {
		name      string
		part, src []byte
		want      string // in the output, or in the error if fail
		fail      bool
	}{
		{"consistent", good, src, "have=4 bytes=3010\nverified 4 chunks\n", false},
		{"claims a damaged chunk", bad, src, "chunk 4 (bytes 4000-4010)", true},
		{"short partial file", good[:len(good)-1], src, "sizes", true},
		{"other original", good, src[:3*cs], "sizes", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			st := partfile.AppendState(nil, partfile.State{Size: int64(len(src)), ChunkSize: cs, Have: have})
			paths := []string{filepath.Join(dir, "state"), filepath.Join(dir, "part"), filepath.Join(dir, "src")}
			for i, b := range [][]byte{st, tt.part, tt.src} {
				if err := os.WriteFile(paths[i], b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			err := fxstate(paths, &out)
			switch {
			case tt.fail && err == nil:
				t.Fatalf("passed, want an error; output:\n%s", out.String())
			case tt.fail && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q, want it to mention %q", err, tt.want)
			case !tt.fail && err != nil:
				t.Fatal(err)
			case !tt.fail && !strings.Contains(out.String(), tt.want):
				t.Fatalf("output %q, want %q in it", out.String(), tt.want)
			}
		})
	}
}

// json PATH REGEXP checks the last line of the last command's standard
// output (a script's last command's document, after the lines of the
// commands before it): it must be exactly one JSON document, and the value at PATH (dot-separated keys and
// array indexes; "len" is an array's length, "*" every element) must match
// REGEXP (strings as they are, numbers and booleans as JSON writes them).
func cmdJSON(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: json PATH REGEXP")
	}
	lines := strings.Split(strings.TrimRight(ts.ReadFile("stdout"), "\n"), "\n")
	dec := json.NewDecoder(strings.NewReader(lines[len(lines)-1]))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		ts.Fatalf("stdout is not JSON: %v", err)
	}
	if dec.More() {
		ts.Fatalf("stdout holds more than one JSON document")
	}
	re, err := regexp.Compile(args[1])
	ts.Check(err)
	vals := jsonAt([]any{doc}, strings.Split(args[0], "."))
	if len(vals) == 0 {
		ts.Fatalf("no value at %s", args[0])
	}
	for _, v := range vals {
		got := fmt.Sprint(v)
		if ok := re.MatchString(got); ok == neg {
			ts.Fatalf("json %s = %q; match %q: %v, want %v", args[0], got, args[1], ok, !neg)
		}
	}
}

func jsonAt(vals []any, path []string) []any {
	if len(path) == 0 || path[0] == "" {
		return vals
	}
	var next []any
	for _, v := range vals {
		switch x := v.(type) {
		case map[string]any:
			if e, ok := x[path[0]]; ok {
				next = append(next, e)
			}
		case []any:
			switch path[0] {
			case "len":
				next = append(next, len(x))
			case "*":
				next = append(next, x...)
			default:
				if i, err := strconv.Atoi(path[0]); err == nil && i >= 0 && i < len(x) {
					next = append(next, x[i])
				}
			}
		}
	}
	return jsonAt(next, path[1:])
}
