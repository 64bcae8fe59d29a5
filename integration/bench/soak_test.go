//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestWindowIndex(t *testing.T) {
	const w, d = time.Minute, 10 * time.Minute
	for _, tt := range []struct {
		el   time.Duration
		want int
	}{
		{-time.Second, 0}, {0, 0}, {59 * time.Second, 0}, {time.Minute, 1},
		{9*time.Minute + 59*time.Second, 9}, {d, 10}, {d + time.Hour, 10},
	} {
		t.Run(tt.el.String(), func(t *testing.T) {
			if got := windowIndex(tt.el, w, d); got != tt.want {
				t.Fatalf("windowIndex(%s) = %d, want %d", tt.el, got, tt.want)
			}
		})
	}
}

func TestWindowLabel(t *testing.T) {
	for _, tt := range []struct {
		i    int
		w    time.Duration
		want string
	}{{0, time.Minute, "minute 1"}, {9, time.Minute, "minute 10"}, {1, 15 * time.Second, "15s-30s"}} {
		if got := windowLabel(tt.i, tt.w); got != tt.want {
			t.Errorf("windowLabel(%d, %s) = %q, want %q", tt.i, tt.w, got, tt.want)
		}
	}
}

// series makes one point every 10 s over 600 s from f.
func series(f func(t float64) float64) []point {
	var ps []point
	for t := 10.0; t <= 600; t += 10 {
		ps = append(ps, point{t, f(t)})
	}
	return ps
}

func TestFitGrowth(t *testing.T) {
	tests := []struct {
		name     string
		ps       []point
		from, to float64
		want     float64
	}{
		{"flat", series(func(float64) float64 { return 5 }), 60, 600, 0},
		{"line", series(func(t float64) float64 { return 100 + t/6 }), 60, 600, 90},
		{"falling", series(func(t float64) float64 { return 100 - t/60 }), 0, 600, -10},
		{"one point", []point{{100, 1}}, 0, 600, nan},
		{"same time", []point{{100, 1}, {100, 3}}, 0, 600, nan},
		{"outside", series(func(float64) float64 { return 1 }), 700, 800, nan},
		{"spikes do not tilt it", series(func(t float64) float64 {
			if t == 580 || t == 590 {
				return 1e6
			}
			return 100 + t/6
		}), 60, 600, 90},
		{"thinned", func() []point {
			var ps []point
			for t := range 5000 {
				ps = append(ps, point{float64(t), 2 * float64(t)})
			}
			return ps
		}(), 0, 4999, 9998},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fitGrowth(tt.ps, tt.from, tt.to); !same(got, tt.want) {
				t.Fatalf("fitGrowth = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWindowMedian(t *testing.T) {
	ps := []point{{10, 1}, {20, 9}, {30, 2}, {60, 3}, {61, 100}}
	if got := windowMedian(ps, 0, 60); got != 2.5 {
		t.Errorf("median of (0, 60] = %v, want 2.5 (60 in, 61 out)", got)
	}
	if got := windowMedian(ps, 60, 120); got != 100 {
		t.Errorf("median of (60, 120] = %v, want 100 (60 out)", got)
	}
	if got := windowMedian(ps, 200, 260); !math.IsNaN(got) {
		t.Errorf("median of an empty window = %v, want NaN", got)
	}
}

func TestCheckGrowth(t *testing.T) {
	// Noise of ±20 around 400, as goroutines of downloads in flight.
	noise := func(t float64) float64 { return 400 + 20*math.Sin(t) }
	tests := []struct {
		name string
		ps   []point
		ok   bool
		why  string
	}{
		{"flat with noise", series(noise), true, ""},
		{"one spike in the last minute", series(func(t float64) float64 {
			if t == 590 {
				return 5000
			}
			return noise(t)
		}), true, ""},
		{"slow leak", series(func(t float64) float64 { return noise(t) + t/3 }), false, "last window"},
		{"step after minute 5 that stays", series(func(t float64) float64 {
			if t > 300 {
				return noise(t) + 150
			}
			return noise(t)
		}), false, "last window"},
		{"within slack", series(func(t float64) float64 { return noise(t) + t/60*8 }), true, ""},
		// The last minute dips back (a GC, a quiet spell) but the trend
		// over minutes 2..10 climbs far past the limit.
		{"trend hidden by a quiet last minute", series(func(t float64) float64 {
			if t > 540 {
				return 400
			}
			return 400 + t
		}), false, "fitted growth"},
		{"no samples in the last minute", series(noise)[:50], false, "not enough samples"},
		{"no samples", nil, false, "not enough samples"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := checkGrowth("goroutines", "goroutines", tt.ps, 60, 600, SoakSlackGoroutines)
			if g.OK != tt.ok || !strings.Contains(g.Why, tt.why) {
				t.Fatalf("checkGrowth: ok %v why %q (first %v last %v fitted %v limit %v), want ok %v why ~%q",
					g.OK, g.Why, g.First, g.Last, g.Fitted, g.Limit, tt.ok, tt.why)
			}
			if _, err := json.Marshal(g); err != nil {
				t.Fatalf("encoding %+v: %v", g, err)
			}
		})
	}
}

func TestSoakVerdict(t *testing.T) {
	good := Growth{Metric: "heap", OK: true}
	bad := Growth{Metric: "server RSS", Why: "last window 90 > limit 60"}
	tests := []struct {
		name             string
		verified, failed int
		gs               []Growth
		ok               bool
		has              string
	}{
		{"pass", 1000, 0, []Growth{good, good}, true, "PASS: 1000 files verified"},
		{"a failure", 1000, 1, []Growth{good}, false, "1 downloads failed"},
		{"nothing verified", 0, 0, []Growth{good}, false, "no file verified"},
		{"growth", 1000, 0, []Growth{good, bad}, false, "server RSS: last window 90"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, text := soakVerdict(tt.verified, tt.failed, tt.gs)
			if ok != tt.ok || !strings.Contains(text, tt.has) {
				t.Fatalf("soakVerdict = %v %q, want %v ~%q", ok, text, tt.ok, tt.has)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	const status = "Name:\tfxsh\nVmHWM:\t  30000 kB\nVmRSS:\t   24576 kB\nThreads:\t9\nSigQ:\t0/63\n"
	tests := []struct {
		name        string
		in          string
		rss, thread int64
	}{
		{"full", status, 24576, 9},
		{"zombie", "Name:\tfxsh\nState:\tZ (zombie)\nThreads:\t1\n", -1, 1},
		{"empty", "", -1, -1},
		{"garbage", "VmRSS:\tlots kB\nThreads:\n", -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rss, th := parseStatus([]byte(tt.in))
			if rss != tt.rss || th != tt.thread {
				t.Fatalf("parseStatus = %d, %d; want %d, %d", rss, th, tt.rss, tt.thread)
			}
		})
	}
	if rss, th := procStatus("self"); rss <= 0 || th <= 0 {
		t.Fatalf("procStatus(self) = %d, %d; want positive", rss, th)
	}
}

func TestReadRuntime(t *testing.T) {
	if s := readRuntime(); s.Goroutines < 1 || s.HeapLive <= 0 || s.UnixNano <= 0 {
		t.Fatalf("readRuntime = %+v", s)
	}
	// Other tests' goroutines may come and go, so check for lower bounds
	// that only what this test holds can meet: 300 goroutines blocked and
	// 64 MiB reachable.
	const blocked, live = 300, 64 << 20
	done := make(chan struct{})
	block := make(chan struct{})
	for range blocked {
		go func() { <-block; done <- struct{}{} }()
	}
	hold := make([]byte, live)
	s := readRuntime()
	runtime.KeepAlive(hold)
	close(block)
	for range blocked {
		<-done
	}
	if s.Goroutines < blocked || s.HeapLive < live {
		t.Fatalf("with %d goroutines blocked and %d bytes live: %+v", blocked, live, s)
	}
}

func TestWriteRuntimeSamples(t *testing.T) {
	var buf bytes.Buffer
	writeRuntimeSamples(context.Background(), &buf, time.Millisecond, 3)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	rs, bad := parseRuntimeSamples(lines)
	if len(rs) != 3 || bad != 0 {
		t.Fatalf("%d samples, %d bad, want 3 good: %q", len(rs), bad, buf.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	buf.Reset()
	writeRuntimeSamples(ctx, &buf, time.Hour, 3)
	if buf.Len() != 0 {
		t.Fatalf("cancelled: wrote %q", buf.String())
	}
}

func TestParseRuntimeSamples(t *testing.T) {
	rs, bad := parseRuntimeSamples([]string{
		`{"unix_ns":5,"goroutines":12,"heap_live_bytes":1024}`,
		`not json`, `{"goroutines":3}`, ``,
	})
	if len(rs) != 1 || bad != 3 || rs[0].Goroutines != 12 || rs[0].HeapLive != 1024 {
		t.Fatalf("got %+v, %d bad", rs, bad)
	}
}

func TestLineTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.jsonl")
	tail := &lineTail{path: p}
	if _, err := tail.read(); err == nil {
		t.Fatal("reading a missing file: no error")
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	steps := []struct {
		write string
		want  []string
	}{
		{"a\nb", []string{"a"}},
		{"c\n", []string{"bc"}},
		{"", nil},
		{"d\ne\n", []string{"d", "e"}},
		{strings.Repeat("x", MaxSoakSampleLine+1), nil}, // an over-long partial line is dropped
		{"\nf\n", []string{"", "f"}},
	}
	for i, s := range steps {
		if _, err := io.WriteString(f, s.write); err != nil {
			t.Fatal(err)
		}
		got, err := tail.read()
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if strings.Join(got, "|") != strings.Join(s.want, "|") || len(got) != len(s.want) {
			t.Fatalf("step %d: got %q, want %q", i, got, s.want)
		}
	}
}

func TestSoakFlags(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(c Config) bool
		bad   bool
	}{
		{"defaults, soak not in the default set", nil, func(c Config) bool {
			return c.Soak == defaultSoak() && !strings.Contains(strings.Join(c.Cases, ","), "soak")
		}, false},
		{"full", []string{"-case", "soak", "-soak-duration", "10m", "-soak-clients", "100"}, func(c Config) bool {
			return c.Cases[0] == "soak" && c.Soak.Duration == 10*time.Minute && c.Soak.Clients == 100 && c.Soak.Loss == 0.05
		}, false},
		{"quick", []string{"-case", "soak", "-quick"}, func(c Config) bool {
			return c.Soak.Duration == time.Minute && c.Soak.Clients == 20 && c.Soak.Window == 20*time.Second && c.Soak.Sample == 4*time.Second
		}, false},
		{"quick keeps what was given", []string{"-quick", "-soak-clients", "7"}, func(c Config) bool {
			return c.Soak.Clients == 7 && c.Soak.Duration == time.Minute
		}, false},
		{"size", []string{"-soak-size", "1MiB", "-soak-files", "3"}, func(c Config) bool {
			return c.Soak.Size == 1<<20 && c.Soak.Files == 3
		}, false},
		{"too many clients", []string{"-soak-clients", "501"}, nil, true},
		{"no clients", []string{"-soak-clients", "0"}, nil, true},
		{"loss 1", []string{"-soak-loss", "1"}, nil, true},
		{"negative loss", []string{"-soak-loss", "-0.1"}, nil, true},
		{"one window only", []string{"-soak-duration", "1m"}, nil, true},
		{"not whole windows", []string{"-soak-duration", "150s"}, nil, true},
		{"sample longer than window", []string{"-soak-sample", "2m"}, nil, true},
		{"sample too short", []string{"-soak-sample", "100ms"}, nil, true},
		{"too many samples", []string{"-soak-duration", "24h", "-soak-sample", "1s"}, nil, true},
		{"too long", []string{"-soak-duration", "25h"}, nil, true},
		{"attempts", []string{"-soak-attempts", "11"}, nil, true},
		{"file timeout", []string{"-soak-file-timeout", "2h"}, nil, true},
		{"files", []string{"-soak-files", "65"}, nil, true},
		{"huge files", []string{"-soak-size", "2GiB"}, nil, true},
		{"unknown case", []string{"-case", "soaks"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseFlags(tt.args, io.Discard)
			if tt.bad {
				if err == nil {
					t.Fatalf("parseFlags(%q): no error; soak %+v", tt.args, c.Soak)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q): %v", tt.args, err)
			}
			if !tt.check(c) {
				t.Fatalf("parseFlags(%q): cases %v soak %+v", tt.args, c.Cases, c.Soak)
			}
		})
	}
}

func TestSoakWindowJSON(t *testing.T) {
	w := SoakWindow{Label: "minute 1", To: 60, Verified: 3, Medians: map[string]float64{"heap": 2.5, "server heap": nan}}
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	m, _ := back["medians"].(map[string]any)
	if back["label"] != "minute 1" || back["verified"] != 3.0 || m["heap"] != 2.5 || m["server heap"] != nil {
		t.Fatalf("encoded %s", b)
	}
}

func TestSameBytes(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 3<<20+7)
	for i := range data {
		data[i] = byte(i * 7)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := bytes.Clone(data)
	flipped[2<<20+5] ^= 1
	tests := []struct {
		name string
		got  string
		src  []byte
		want string // "" for a match
	}{
		{"same", write("same", data), data, ""},
		{"one bit differs", write("flip", flipped), data, "bytes 2097152..3145728"},
		{"short", write("short", data[:100]), data, "100 bytes, want"},
		{"longer", write("long", append(bytes.Clone(data), 0)), data, "bytes, want"},
		{"missing", filepath.Join(dir, "none"), data, "no such file"},
		{"empty", write("empty", nil), nil, ""},
		{"empty, want bytes", write("empty2", nil), data, "0 bytes, want"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sameBytes(tt.got, tt.src, make([]byte, 1<<20))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("sameBytes: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("sameBytes: %v, want ~%q", err, tt.want)
			}
		})
	}
}

func TestMapSources(t *testing.T) {
	dir := t.TempDir()
	set := &fileSet{Dir: dir, Names: []string{"a", "b"}, Size: 5}
	for _, n := range set.Names {
		if err := os.WriteFile(set.path(n), []byte(n+"1234"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := mapSources(set)
	if err != nil {
		t.Fatal(err)
	}
	defer unmapSources(m)
	if string(m["a"]) != "a1234" || string(m["b"]) != "b1234" || len(m) != 2 {
		t.Fatalf("mapped %q", m)
	}
	if _, err := mapSources(&fileSet{Dir: dir, Names: []string{"a", "none"}, Size: 5}); err == nil {
		t.Fatal("mapping a missing file: no error")
	}
}

func TestSoakCheckers(t *testing.T) {
	for _, tt := range []struct{ clients, want int }{{1, 1}, {4, 1}, {5, 2}, {20, 5}, {100, 25}, {MaxSoakClients, 125}} {
		if got := soakCheckers(tt.clients); got != tt.want {
			t.Errorf("soakCheckers(%d) = %d, want %d", tt.clients, got, tt.want)
		}
	}
}
