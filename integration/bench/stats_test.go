//go:build linux

package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

var nan = math.NaN()

func same(a, b float64) bool {
	return (math.IsNaN(a) && math.IsNaN(b)) || math.Abs(a-b) < 1e-9
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "64MiB", want: 64 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "100MB", want: 100e6},
		{in: "4096", want: 4096},
		{in: "2K", want: 2048},
		{in: " 3 MiB ", want: 3 << 20},
		{in: "64GiB", want: 64 << 30},
		{in: "65GiB", bad: true},
		{in: "0", bad: true},
		{in: "-1MiB", bad: true},
		{in: "1.5GiB", bad: true},
		{in: "MiB", bad: true},
		{in: "", bad: true},
		{in: "9223372036854775807GiB", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSize(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("parseSize(%q) = %d, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{{1 << 30, "1GiB"}, {256 << 20, "256MiB"}, {1536 << 20, "1536MiB"}, {1000, "1000B"}, {3 << 10, "3KiB"}} {
		if got := formatSize(tt.n); got != tt.want {
			t.Errorf("formatSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, n := range []int64{1, 1000, 1 << 20, 64 << 20, 1 << 30, MaxSize} {
		f.Add(formatSize(n))
	}
	f.Add("12MB")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if n <= 0 || n > MaxSize {
			t.Fatalf("parseSize(%q) = %d, outside 1..MaxSize", s, n)
		}
		back, err := parseSize(formatSize(n))
		if err != nil || back != n {
			t.Fatalf("round trip of %d via %q: %d, %v", n, formatSize(n), back, err)
		}
	})
}

func TestMedianRatioPercentile(t *testing.T) {
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"median odd", median([]float64{3, 1, 2}), 2},
		{"median even", median([]float64{4, 1, 3, 2}), 2.5},
		{"median skips NaN", median([]float64{nan, 5, nan, 1, 3}), 3},
		{"median all NaN", median([]float64{nan, nan}), nan},
		{"median empty", median(nil), nan},
		{"ratio", ratio(3, 4), 0.75},
		{"ratio zero denominator", ratio(3, 0), nan},
		{"ratio NaN", ratio(nan, 4), nan},
		{"p99 of 1..100", percentile(seq(100), 0.99), 99},
		{"p50 of 1..100", percentile(seq(100), 0.50), 50},
		{"p100", percentile(seq(10), 1), 10},
		{"p0", percentile(seq(10), 0), 1},
		{"percentile empty", percentile(nil, 0.5), nan},
		{"mbps", mbps(2e6, 2), 1},
		{"mbps zero time", mbps(1, 0), nan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !same(tt.got, tt.want) {
				t.Fatalf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	r := ratios([]float64{2, 4, nan}, []float64{1, 8, 1, 7})
	if len(r) != 3 || !same(r[0], 2) || !same(r[1], 0.5) || !math.IsNaN(r[2]) {
		t.Errorf("ratios = %v", r)
	}
	lo, hi := minMax([]float64{nan, 3, 9, 1})
	if lo != 1 || hi != 9 {
		t.Errorf("minMax = %v, %v", lo, hi)
	}
}

func seq(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[n-1-i] = float64(i + 1) // reversed: percentile must sort
	}
	return out
}

func TestRowFinish(t *testing.T) {
	tests := []struct {
		name      string
		row       Row
		met       string
		ratioMed  float64
		ratioRnds int
	}{
		{"ratio met", Row{Fxsh: []float64{90, 80, 100}, Ref: []float64{100, 100, 100}, Target: Target{"ratio", ">=", 0.8, 0}}, "yes", 0.9, 3},
		{"ratio missed", Row{Fxsh: []float64{70, 60, 100}, Ref: []float64{100, 100, 100}, Target: Target{"ratio", ">=", 0.8, 0}}, "no", 0.7, 3},
		{"a failed round", Row{Fxsh: []float64{90, nan, 100}, Ref: []float64{100, 100, 100}, Target: Target{"ratio", ">=", 0.8, 0}}, "no (1/3 rounds failed)", 0.95, 3},
		{"fxsh missing", Row{Fxsh: []float64{nan, nan}, Ref: []float64{1, 1}, Target: Target{"ratio", ">=", 1, 0}}, "untested", nan, 2},
		{"fxsh below a cap", Row{Fxsh: []float64{1.2, 1.6, 1.4}, Target: Target{"fxsh", "<=", 1.5, 0}}, "yes", nan, 0},
		{"fxsh over a cap", Row{Fxsh: []float64{2.5, 1.9}, Target: Target{"fxsh", "<", 2, 0}}, "no", nan, 0},
		{"share inside a band", Row{Fxsh: []float64{0.45, 0.55, 0.5}, Ref: []float64{0.55, 0.45, 0.5}, Target: Target{"fxsh", "in", 0.4, 0.6}}, "yes", 1, 3},
		{"share outside a band", Row{Fxsh: []float64{0.7, 0.8, 0.75}, Target: Target{"fxsh", "in", 0.4, 0.6}}, "no", nan, 0},
		{"no target", Row{Fxsh: []float64{1}, Ref: []float64{2}}, "-", 0.5, 1},
		{"bad operator", Row{Fxsh: []float64{1}, Target: Target{"fxsh", "~", 2, 0}}, "bad target: operator \"~\"", nan, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.row
			r.finish()
			if r.Met != tt.met || !same(r.RatioMedian, tt.ratioMed) || len(r.Ratio) != tt.ratioRnds {
				t.Fatalf("Met %q ratio median %v (%d rounds); want %q %v (%d)", r.Met, r.RatioMedian, len(r.Ratio), tt.met, tt.ratioMed, tt.ratioRnds)
			}
		})
	}
}

func TestPrintCaseAndJSON(t *testing.T) {
	r := Row{Case: "loopback 1GiB", Unit: "MB/s", Fxsh: []float64{800, nan, 900}, Ref: []float64{1000, 1000, 1000},
		RefIs: "tcp-cubic", Target: Target{"ratio", ">=", 0.8, 0}}
	r.finish()
	var b strings.Builder
	printCase(&b, CaseResult{Name: "loopback", Rows: []Row{r}, Info: []string{"hello"}})
	for _, want := range []string{"loopback 1GiB", "1000 (tcp-cubic)", "0.8 - 0.9", "0.85", ">= 0.8×", "no (1/3 rounds failed)", "hello"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	path := t.TempDir() + "/r.json"
	res := &Results{Cases: []CaseResult{{Name: "x", Rows: []Row{r}, Transfers: []Transfer{{Impl: "fxsh", MBps: 1}}}}}
	if err := writeJSON(path, res); err != nil {
		t.Fatalf("writeJSON with NaN figures: %v", err)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(Config) bool
		bad   bool
	}{
		{"defaults", nil, func(c Config) bool {
			return c.Rounds == 3 && c.Size == 1<<30 && c.LossySize == 256<<20 && len(c.Cases) == 6 && len(c.Losses) == 3 && len(c.Limits) == 3 && len(c.ShareLimits) == 2
		}, false},
		{"quick", []string{"-quick"}, func(c Config) bool {
			return c.Rounds == 1 && c.Size == 64<<20 && c.LossyTimeout == 8*time.Second
		}, false},
		{"quick keeps explicit flags", []string{"-quick", "-rounds", "2"}, func(c Config) bool { return c.Rounds == 2 }, false},
		{"size caps the others", []string{"-size", "64MiB"}, func(c Config) bool {
			return c.Size == 64<<20 && c.ConcSize == 64<<20 && c.ManySize == 64<<20 && c.LossySize == 64<<20
		}, false},
		{"cases", []string{"-case", "lossy, master,lossy"}, func(c Config) bool {
			return len(c.Cases) == 2 && c.Cases[0] == "lossy" && c.Cases[1] == "master"
		}, false},
		{"unknown case", []string{"-case", "nope"}, nil, true},
		{"limits", []string{"-limits", "0, 1000,200", "-share-limits", "200"}, func(c Config) bool {
			return len(c.Limits) == 3 && c.Limits[0] == 0 && c.Limits[1] == 1000 && c.Limits[2] == 200 && len(c.ShareLimits) == 1 && c.ShareLimits[0] == 200
		}, false},
		{"bad limit", []string{"-limits", "0,-1"}, nil, true},
		{"limit past the ring", []string{"-limits", "99999"}, nil, true},
		{"bad loss", []string{"-loss", "0,100"}, nil, true},
		{"too many rounds", []string{"-rounds", "51"}, nil, true},
		{"too many clients", []string{"-clients", "101"}, nil, true},
		{"stray argument", []string{"x"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseFlags(tt.args, &strings.Builder{})
			if tt.bad {
				if err == nil {
					t.Fatalf("no error for %q", tt.args)
				}
				return
			}
			if err != nil || !tt.check(c) {
				t.Fatalf("parseFlags(%q) = %+v, %v", tt.args, c, err)
			}
		})
	}
}

func TestParsers(t *testing.T) {
	stat := []byte("1234 (fx sh) (x)) S 1 2 3 4 5 6 7 8 9 10 250 130 0 0 20 0 8 0 100 0 0")
	if cpu, err := parseStatCPU(stat); err != nil || !same(cpu, 3.8) {
		t.Errorf("parseStatCPU = %v, %v; want 3.8", cpu, err)
	}
	for _, bad := range []string{"no paren", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 a b"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q): no error", bad)
		}
	}
	if got := parseHWM([]byte("Name:\tx\nVmPeak:\t 99 kB\nVmHWM:\t   4321 kB\n")); got != 4321 {
		t.Errorf("parseHWM = %d", got)
	}
	out := `goos: linux
BenchmarkSearch-2   	    2000	    193968 ns/op	        16.72 build-s	         0.1330 p50-ms	         0.5960 p99-ms
BenchmarkSearch-2   	    2000	    183968 ns/op	        16.72 build-s	         0.1230 p50-ms	         0.4960 p99-ms
BenchmarkRegister 1 12174937643 ns/op 12.17 s/10k-servers
BenchmarkBroken-2 10 1 ns/op oops
PASS`
	names, ms := parseBenchLines(out)
	if len(names) != 3 || names[0] != "BenchmarkSearch" || names[2] != "BenchmarkRegister" {
		t.Fatalf("names = %q", names)
	}
	if p99 := metric(ms[:2], "p99-ms", 3); !same(p99[0], 0.596) || !same(p99[1], 0.496) || !math.IsNaN(p99[2]) {
		t.Errorf("p99 = %v", p99)
	}
	if ms[2]["s/10k-servers"] != 12.17 {
		t.Errorf("register = %v", ms[2])
	}
	rs, err := parseFetchResults([]string{"listening x", `{"name":"f0.bin","bytes":5,"complete":true,"cc":"cubic"}`})
	if err != nil || len(rs) != 1 || rs[0].Bytes != 5 || rs[0].CC != "cubic" {
		t.Errorf("parseFetchResults = %+v, %v", rs, err)
	}
	if _, err := parseFetchResults([]string{"{bad"}); err == nil {
		t.Error("parseFetchResults of a bad line: no error")
	}
}

func TestRotateAndAggregate(t *testing.T) {
	got := rotate([]string{"a", "b", "c"}, 4)
	if strings.Join(got, "") != "bca" {
		t.Errorf("rotate = %q", got)
	}
	ts := []Transfer{
		{OK: true, Bytes: 100e6, Start: 0, Seconds: 1},
		{OK: true, Bytes: 100e6, Start: 0.5, Seconds: 1.5},
	}
	if agg := manyAggregate(ts); !same(agg, 100) {
		t.Errorf("aggregate = %v, want 100 MB/s", agg)
	}
	ts[1].OK = false
	if agg := manyAggregate(ts); !math.IsNaN(agg) {
		t.Errorf("aggregate with a failed client = %v, want NaN", agg)
	}
}
