package monotonic

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

// allowed is one legitimate wall-clock use: a finding with this file,
// enclosing function, rule and expression passes.
type allowed struct {
	file, fn, rule, expr string
	why                  string
}

// allowlist holds the module's legitimate wall-clock uses, one reason each.
// A new entry needs a reason a reviewer can check: a timestamp that goes to
// the wire or disk or is shown to people, never a timer.
var allowlist = []allowed{
	{"integration/bench/main.go", "bench.run", ruleStrip, "time.Now().UTC()",
		"the benchmark report's start date, written to its JSON for people"},
	{"integration/bench/soak.go", "readRuntime", ruleUnix, "time.Now().UnixNano()",
		"the soak server child stamps each runtime sample for the parent process, in its samples file"},
	{"integration/bench/soak.go", "bench.soak", ruleUnix, "r.start.UnixNano()",
		"a real wall-clock difference, left to the soak's author: places the child's samples on the run's timeline (a step during a soak shifts them; benchmark figures only, no timer)"},
	{"netproto/line/records.go", "PeerMsg", ruleUnix, "s.Registered.Unix()",
		"PEERS since= is a UNIX timestamp on the wire"},
	{"netproto/line/records.go", "PeerMsg", ruleUnix, "s.LastSeen.Unix()",
		"PEERS seen= is a UNIX timestamp on the wire"},
	{"netproto/pcap/pcap.go", "Writer.write", ruleUnix, "r.t.UnixMicro()",
		"a pcap record header's timestamp is wall-clock seconds and microseconds, on disk for Wireshark"},
	{"shell/catalog_noetcd.go", "(imports)", ruleElsewhere, `import "time"`,
		"time.Duration only names a parameter's type of openEtcdCatalog in the build without etcd: the file reads no clock"},
	{"shell/cmd_index.go", "cmdPeers", ruleMix, "now.Sub(p.Registered)",
		"peers prints \"registered N ago\" from the master's timestamp, another host's wall clock (a negative age prints as -)"},
	{"store/etcdcat/etcdcat.go", "Catalog.Register", ruleStrip, "c.nowFunc().Round(0)",
		"Registered is written to etcd, a wall-clock timestamp that other masters read"},
	{"store/etcdcat/etcdcat.go", "Catalog.Heartbeat", ruleStrip, "c.nowFunc().Round(0)",
		"the heartbeat time is shown as LastSeen beside Registered (wall clock); expiry is etcd's lease, not this time"},
	{"store/etcdcat/etcdcat.go", "Catalog.Servers", ruleMix, "st.heartbeat.After(s.LastSeen)",
		"both wall clock here: s.LastSeen is Registered decoded from etcd (the check follows a field, store.Server.LastSeen, that memcat fills from time.Now)"},
	{"store/catalogtest/catalogtest.go", "testRegisterAndRead", ruleMix, "s.Registered.Before(before)",
		"a catalog test checks the registration's timestamp against the test's start"},
	{"store/catalogtest/catalogtest.go", "testRegisterAndRead", ruleMix, "s.LastSeen.Before(before)",
		"a catalog test checks the registration's timestamp against the test's start"},
}

// filter drops the allowed findings; used[i] says allow[i] matched.
func filter(fs []finding, allow []allowed) (left []finding, used []bool) {
	used = make([]bool, len(allow))
	for _, f := range fs {
		i := slices.IndexFunc(allow, func(a allowed) bool {
			return a.file == f.file && a.fn == f.fn && a.rule == f.rule && a.expr == f.expr
		})
		if i < 0 {
			left = append(left, f)
			continue
		}
		used[i] = true
	}
	return left, used
}

// TestModule checks every non-test file of the module.
func TestModule(t *testing.T) {
	u, pkgs, elsewhere, err := loadModule()
	if err != nil {
		t.Fatal(err)
	}
	// Not vacuous: the roles with timers were type-checked.
	for _, want := range []string{"github.com/fxshell/fxsh/netproto/master", "github.com/fxshell/fxsh/netproto/transfer", "github.com/fxshell/fxsh/netproto/masterclient",
		"github.com/fxshell/fxsh/store/memcat", "github.com/fxshell/fxsh/store/etcdcat", "github.com/fxshell/fxsh/store/partfile", "github.com/fxshell/fxsh/shell"} {
		if !slices.ContainsFunc(pkgs, func(p *sourcePackage) bool { return p.path == want }) {
			t.Errorf("package %s was not checked", want)
		}
	}
	for _, a := range allowlist {
		if a.why == "" {
			t.Errorf("allowlist entry %s %s %q has no reason", a.file, a.fn, a.expr)
		}
	}
	fs := append(run(u, pkgs), checkElsewhere(u.fset, elsewhere)...)
	left, used := filter(fs, allowlist)
	for _, f := range left {
		t.Errorf("%v\n\tTimers and durations must read the monotonic clock (time.Now, time.Since, t.Add, t.Sub of two readings);"+
			" if this is a timestamp for the wire, the disk or people, add it to the allowlist in %s with a one-line reason.",
			f, "integration/monotonic/monotonic_test.go")
	}
	for i, ok := range used {
		if !ok { // stale, not wrong: the code it excused has changed
			t.Logf("allowlist entry no longer needed: %s %s %q", allowlist[i].file, allowlist[i].fn, allowlist[i].expr)
		}
	}
	t.Logf("%d packages, %d findings, %d allowed", len(pkgs), len(fs), len(fs)-len(left))
}

var (
	stdOnce sync.Once
	stdList []listedPackage
	stdErr  error
)

// checkSnippet type-checks src as the file snippet.go of a module package
// and returns its findings as "rule expr" strings.
func checkSnippet(t *testing.T, src string) []string {
	t.Helper()
	stdOnce.Do(func() { stdList, stdErr = goList(os.TempDir(), "time", "net", "os", "context") })
	if stdErr != nil {
		t.Fatal(stdErr)
	}
	u := newUniverse(stdList)
	sp, err := u.check("github.com/fxshell/fxsh/snippet", []string{"snippet.go"}, map[string][]byte{"snippet.go": []byte("package snippet\n" + src)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range run(u, []*sourcePackage{sp}) {
		got = append(got, f.rule+" "+f.expr)
	}
	return got
}

// TestCatches runs the check on small programs, bad and good: it must
// find every misuse here, and nothing in the good ones.
func TestCatches(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"unix seconds as a timer", `import "time"
var start = time.Now().Unix()
func elapsed() int64 { return time.Now().Unix() - start }`,
			[]string{"unix time.Now().Unix()", "unix time.Now().Unix()"}},
		{"unix nanoseconds into a duration", `import "time"
func since(t0 int64) time.Duration { return time.Duration(time.Now().UnixNano() - t0) }`,
			[]string{"unix time.Now().UnixNano()"}},
		{"unix millis of a stored reading", `import "time"
type job struct{ started time.Time }
func (j *job) start() { j.started = time.Now() }
func (j *job) ms() int64 { return j.started.UnixMilli() }`,
			[]string{"unix j.started.UnixMilli()"}},
		{"round 0 strips", `import "time"
func stamp() time.Time { return time.Now().Round(0) }`,
			[]string{"strip time.Now().Round(0)"}},
		{"truncate 0 of anything", `import "time"
func strip(t time.Time) time.Time { return t.Truncate(0) }`,
			[]string{"strip t.Truncate(0)"}},
		{"UTC reading used as a timer", `import "time"
func slow(work func()) bool {
	t := time.Now().UTC()
	work()
	return time.Since(t) > time.Second
}`,
			[]string{"strip time.Now().UTC()", "mix time.Since(t)"}},
		{"wire timestamp compared with now", `import "time"
func expired(sec int64) bool { return time.Unix(sec, 0).Before(time.Now()) }`,
			[]string{"mix time.Unix(sec, 0).Before(time.Now())"}},
		{"through a struct field", `import "time"
type session struct{ seen time.Time }
func (s *session) heard(sec int64) { s.seen = time.Unix(sec, 0) }
func (s *session) stale(ttl time.Duration) bool { return time.Now().Sub(s.seen) > ttl }`,
			[]string{"mix time.Now().Sub(s.seen)"}},
		{"through a clock held in a field", `import ("os"; "time")
type catalog struct{ now func() time.Time }
func newCatalog() *catalog { return &catalog{now: time.Now} }
func (c *catalog) old(fi os.FileInfo) bool { return c.now().After(fi.ModTime().Add(time.Hour)) }`,
			[]string{"mix c.now().After(fi.ModTime().Add(time.Hour))"}},
		{"file age", `import ("os"; "time")
func old(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && time.Since(fi.ModTime()) > time.Hour
}`,
			[]string{"mix time.Since(fi.ModTime())"}},
		{"through parameters", `import "time"
func after(now, at time.Time) bool { return now.After(at) }
func due(sec int64) bool { return after(time.Now(), time.Unix(sec, 0)) }`,
			[]string{"mix now.After(at)"}},
		{"through a result", `import "time"
func parse(sec int64) time.Time { return time.Unix(sec, 0) }
func left(sec int64) time.Duration { return time.Until(parse(sec)) }`,
			[]string{"mix time.Until(parse(sec))"}},
		{"through a tuple result", `import "time"
func load() (time.Time, error) { return time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), nil }
func age() time.Duration {
	t, err := load()
	if err != nil {
		return 0
	}
	return time.Now().Sub(t)
}`,
			[]string{"mix time.Now().Sub(t)"}},
		{"ranging over wall times", `import "time"
func prune(m map[string]time.Time, sec int64) {
	m["x"] = time.Unix(sec, 0)
	now := time.Now()
	for k, t := range m {
		if now.Sub(t) > time.Minute {
			delete(m, k)
		}
	}
}`,
			[]string{"mix now.Sub(t)"}},
		{"wall deadlines", `import ("context"; "net"; "time")
func read(ctx context.Context, c net.Conn, sec int64) {
	c.SetReadDeadline(time.Unix(sec, 0))
	ctx, cancel := context.WithDeadline(ctx, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	defer cancel()
	_ = ctx
}`,
			[]string{"deadline c.SetReadDeadline(time.Unix(sec, 0))", "deadline context.WithDeadline(ctx, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))"}},
		{"monotonic throughout", `import ("context"; "net"; "os"; "time")
type conn struct {
	nc   net.Conn
	last time.Time
	now  func() time.Time
}
func newConn(nc net.Conn) *conn { return &conn{nc: nc, now: time.Now} }
func (c *conn) touch() { c.last = c.now() }
func (c *conn) idle() time.Duration { return time.Since(c.last) }
func (c *conn) expired(ttl time.Duration) bool { return c.now().After(c.last.Add(ttl)) }
func (c *conn) arm(ctx context.Context, d time.Duration) {
	deadline := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	c.nc.SetDeadline(deadline)
}
func (c *conn) stop() { c.nc.SetDeadline(time.Unix(1, 0)) }
func same(a, b os.FileInfo) bool { return a.ModTime().Equal(b.ModTime()) }
func wire(fi os.FileInfo) int64 { return fi.ModTime().Unix() }
func decode(sec int64) time.Time { return time.Unix(sec, 0).UTC() }
func show() string { return time.Now().Local().Format("15:04:05") }`,
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkSnippet(t, tt.src)
			if !slices.Equal(got, tt.want) {
				t.Errorf("found\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tt.want, "\n\t"))
			}
		})
	}
}

// TestAllowlist checks that an allowlist entry excuses its own finding and
// no other.
func TestAllowlist(t *testing.T) {
	fs := []finding{
		{file: "a.go", fn: "F", rule: ruleUnix, expr: "t.Unix()"},
		{file: "a.go", fn: "G", rule: ruleUnix, expr: "t.Unix()"},
		{file: "b.go", fn: "F", rule: ruleMix, expr: "t.Unix()"},
	}
	allow := []allowed{
		{"a.go", "F", ruleUnix, "t.Unix()", "wire"},
		{"c.go", "F", ruleUnix, "t.Unix()", "gone"},
	}
	left, used := filter(fs, allow)
	if got := fmt.Sprint(left); len(left) != 2 || left[0].fn != "G" || left[1].file != "b.go" {
		t.Errorf("left %s, want the G and b.go findings", got)
	}
	if !used[0] || used[1] {
		t.Errorf("used = %v, want [true false]", used)
	}
}
