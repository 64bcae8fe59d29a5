//go:build linux

package main

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// MaxSize caps a file size given on the command line: the files are written
// to disk and copied several times per round.
const MaxSize = 64 << 30

// Units for sizes on the command line; decimal and binary prefixes both.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30},
	{"B", 1},
}

// parseSize reads "64MiB", "1GiB", "100MB", "4096": a positive size of at
// most MaxSize bytes.
func parseSize(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: not a whole number with a unit (e.g. 64MiB)", s)
	}
	if n <= 0 || n > MaxSize/mult {
		return 0, fmt.Errorf("size %q: must be between 1 B and %s", s, formatSize(MaxSize))
	}
	return n * mult, nil
}

// formatSize prints a size in the largest binary unit that divides it, else
// in bytes: 1GiB, 256MiB, 1000B.
func formatSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// mbps is the throughput in MB/s (10^6 bytes a second); NaN for a zero or
// negative time.
func mbps(bytes int64, seconds float64) float64 {
	if seconds <= 0 || bytes < 0 {
		return math.NaN()
	}
	return float64(bytes) / seconds / 1e6
}

// median of the values that are not NaN; NaN when there are none. An even
// count averages the two middle values.
func median(xs []float64) float64 {
	v := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	m := len(v) / 2
	if len(v)%2 == 1 {
		return v[m]
	}
	return (v[m-1] + v[m]) / 2
}

// ratio is a/b, NaN when either is NaN or b is not positive.
func ratio(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b <= 0 {
		return math.NaN()
	}
	return a / b
}

// ratios divides a by b round by round; the shorter slice sets the length.
func ratios(a, b []float64) []float64 {
	out := make([]float64, min(len(a), len(b)))
	for i := range out {
		out[i] = ratio(a[i], b[i])
	}
	return out
}

// minMax of the values that are not NaN, (NaN, NaN) when there are none.
func minMax(xs []float64) (lo, hi float64) {
	lo, hi = math.NaN(), math.NaN()
	for _, x := range xs {
		if math.IsNaN(x) {
			continue
		}
		if math.IsNaN(lo) || x < lo {
			lo = x
		}
		if math.IsNaN(hi) || x > hi {
			hi = x
		}
	}
	return lo, hi
}

// percentile q (0..1) of xs by the nearest-rank method; NaN when empty.
func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 || math.IsNaN(q) {
		return math.NaN()
	}
	v := slices.Clone(xs)
	slices.Sort(v)
	i := int(math.Ceil(q*float64(len(v)))) - 1
	return v[max(0, min(len(v)-1, i))]
}

// Target is what a row's median must reach.
type Target struct {
	Of    string  `json:"of"` // "ratio" or "fxsh": which median is compared
	Op    string  `json:"op"` // ">=", "<=", "<" or "in" (Value ≤ v ≤ Hi)
	Value float64 `json:"value"`
	Hi    float64 `json:"hi,omitempty"`
}

var errBadTarget = errors.New("bad target")

// check tells whether v meets the target. A NaN (failed or untested)
// value never does.
func (t Target) check(v float64) (bool, error) {
	if math.IsNaN(v) {
		return false, nil
	}
	switch t.Op {
	case ">=":
		return v >= t.Value, nil
	case "<=":
		return v <= t.Value, nil
	case "<":
		return v < t.Value, nil
	case "in":
		return v >= t.Value && v <= t.Hi, nil
	}
	return false, fmt.Errorf("%w: operator %q", errBadTarget, t.Op)
}

func (t Target) String() string {
	if t.Op == "" {
		return "-"
	}
	v := strconv.FormatFloat(t.Value, 'g', -1, 64)
	if t.Op == "in" {
		return "in " + v + ".." + strconv.FormatFloat(t.Hi, 'g', -1, 64)
	}
	if t.Of == "ratio" {
		return t.Op + " " + v + "×"
	}
	return t.Op + " " + v
}
