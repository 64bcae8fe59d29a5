//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// Transfer is one measured download: one client process, one or more files.
type Transfer struct {
	Case     string  `json:"case"`
	Round    int     `json:"round"`
	Impl     string  `json:"impl"`               // "fxsh", "tcp-cubic", "tcp-bbr"
	Label    string  `json:"label,omitempty"`    // e.g. "loss=1%", "client 7/20"
	Files    int     `json:"files"`              // files fetched by this client
	Bytes    int64   `json:"bytes"`              // bytes received (all files)
	Seconds  float64 `json:"seconds"`            // client process start to exit
	MBps     float64 `json:"mbps"`               // Bytes/Seconds in 10^6 B/s
	Start    float64 `json:"start"`              // seconds since the case began
	OK       bool    `json:"ok"`                 // complete and SHA-256 verified
	Partial  bool    `json:"partial"`            // stopped at the time limit
	Err      string  `json:"error,omitempty"`    // why not OK
	CC       string  `json:"cc,omitempty"`       // TCP congestion control in use
	Reported string  `json:"reported,omitempty"` // fxsh's own "done" line

	ClientCPU    float64 `json:"client_cpu_s"`   // user+sys, rusage of the client
	ClientRSSKiB int64   `json:"client_rss_kib"` // ru_maxrss of the client
	ServerCPU    float64 `json:"server_cpu_s"`   // /proc delta over the transfer
	ServerRSSKiB int64   `json:"server_rss_kib"` // VmHWM of the server after it

	Path *DirStats `json:"path,omitempty"` // the lossy path's data direction over it
}

// value is the throughput of a transfer, NaN unless it completed and
// verified, or stopped at the time limit with partial bytes counted.
func (t Transfer) value() float64 {
	if !t.OK && !t.Partial {
		return math.NaN()
	}
	return t.MBps
}

// Row is one line of a case's table: fxsh's and the reference's figure per
// round, their ratio per round, and the target the median must meet.
type Row struct {
	Case   string    `json:"case"`
	Unit   string    `json:"unit"`
	Fxsh   []float64 `json:"fxsh"`
	Ref    []float64 `json:"reference"`
	RefIs  string    `json:"reference_is"`
	Ratio  []float64 `json:"ratio"`
	Target Target    `json:"target"`

	FxshMedian  float64 `json:"fxsh_median"`
	RefMedian   float64 `json:"reference_median"`
	RatioMedian float64 `json:"ratio_median"`
	Met         string  `json:"met"` // "yes", "no", "untested", "-"
	Note        string  `json:"note,omitempty"`
}

// finish fills in the medians, the ratios when none were given, and Met.
func (r *Row) finish() {
	if r.Ratio == nil && r.Ref != nil {
		r.Ratio = ratios(r.Fxsh, r.Ref)
	}
	r.FxshMedian, r.RefMedian, r.RatioMedian = median(r.Fxsh), median(r.Ref), median(r.Ratio)
	if r.Target.Op == "" {
		r.Met = "-"
		return
	}
	v, rounds := r.RatioMedian, r.Ratio
	if r.Target.Of == "fxsh" {
		v, rounds = r.FxshMedian, r.Fxsh
	}
	if math.IsNaN(v) {
		r.Met = "untested"
		return
	}
	// A round that failed (a download that did not complete) fails the
	// target: a median of the rounds that worked would hide it.
	missing := 0
	for _, x := range rounds {
		if math.IsNaN(x) {
			missing++
		}
	}
	if missing > 0 {
		r.Met = fmt.Sprintf("no (%d/%d rounds failed)", missing, len(rounds))
		return
	}
	ok, err := r.Target.check(v)
	switch {
	case err != nil:
		r.Met = err.Error()
	case ok:
		r.Met = "yes"
	default:
		r.Met = "no"
	}
}

// CaseResult is everything one case measured.
type CaseResult struct {
	Name      string         `json:"name"`
	Rows      []Row          `json:"rows"`
	Info      []string       `json:"info,omitempty"`
	Transfers []Transfer     `json:"transfers,omitempty"`
	Extra     map[string]any `json:"extra,omitempty"`
	Err       string         `json:"error,omitempty"`
	Seconds   float64        `json:"seconds"`
}

// Results is the JSON file.
type Results struct {
	Started time.Time    `json:"started"`
	Command []string     `json:"command"`
	Facts   Facts        `json:"facts"`
	Config  Config       `json:"config"`
	Cases   []CaseResult `json:"cases"`
}

// cleanNaN writes NaN as null: encoding/json refuses NaN.
func cleanNaN(xs []float64) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			out[i] = nil
		} else {
			out[i] = x
		}
	}
	return out
}

func nanNull(x float64) any {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return x
}

// MarshalJSON writes the row with NaN as null.
func (r Row) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{
		"case": r.Case, "unit": r.Unit, "reference_is": r.RefIs,
		"fxsh": cleanNaN(r.Fxsh), "reference": cleanNaN(r.Ref), "ratio": cleanNaN(r.Ratio),
		"target": r.Target, "target_text": r.Target.String(),
		"fxsh_median": nanNull(r.FxshMedian), "reference_median": nanNull(r.RefMedian),
		"ratio_median": nanNull(r.RatioMedian), "met": r.Met, "note": r.Note,
	})
}

func writeJSON(path string, res *Results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("writing results: %w", err)
		}
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("writing results: %s is a folder", path)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	return nil
}

// num prints a figure with three significant digits, "-" for NaN.
func num(x float64) string {
	switch {
	case math.IsNaN(x) || math.IsInf(x, 0):
		return "-"
	case x == 0:
		return "0"
	case math.Abs(x) >= 100:
		return fmt.Sprintf("%.0f", x)
	case math.Abs(x) >= 10:
		return fmt.Sprintf("%.1f", x)
	case math.Abs(x) >= 1:
		return fmt.Sprintf("%.2f", x)
	}
	return fmt.Sprintf("%.3g", x)
}

func nums(xs []float64) string {
	if len(xs) == 0 {
		return "-"
	}
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = num(x)
	}
	return strings.Join(s, " ")
}

// printCase writes the table of one case: case, unit, fxsh and reference
// medians (per round in brackets when more than one), ratio per round,
// median ratio, target, met.
func printCase(w io.Writer, c CaseResult) {
	if c.Seconds > 0 {
		fmt.Fprintf(w, "\n== %s (%.0f s)\n", c.Name, c.Seconds)
	} else {
		fmt.Fprintf(w, "\n== %s\n", c.Name)
	}
	for _, l := range c.Info {
		fmt.Fprintf(w, "   %s\n", l)
	}
	if c.Err != "" {
		fmt.Fprintf(w, "   ERROR: %s\n", c.Err)
	}
	if len(c.Rows) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "case\tunit\tfxsh\treference\tratio per round\tmedian ratio\ttarget\tmet?")
	for _, r := range c.Rows {
		ref := num(r.RefMedian)
		if r.RefIs != "" && r.Ref != nil {
			ref += " (" + r.RefIs + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Case, r.Unit, num(r.FxshMedian), ref,
			nums(r.Ratio), num(r.RatioMedian), r.Target, r.Met)
	}
	tw.Flush()
	for _, r := range c.Rows {
		if r.Note != "" {
			fmt.Fprintf(w, "   note (%s): %s\n", r.Case, r.Note)
		}
	}
}
