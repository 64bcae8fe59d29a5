package shell

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fxshell/fxsh/netproto/transfer"
)

// A setting is one `set KEY VALUE` knob: its parser validates a value and
// returns its canonical text; apply (optional) pushes it into the running
// roles.
type setting struct {
	name   string
	help   string
	def    string
	values []string // for completion of enumerated values
	parse  func(string) (string, error)
}

// Settings holds the current values. Values are stored in canonical text;
// typed getters read them.
type Settings struct {
	defs map[string]*setting

	mu    sync.Mutex // protects vals and hooks
	vals  map[string]string
	hooks []func(key, val string)
}

func onOff(s string) (string, error) {
	switch strings.ToLower(s) {
	case "on", "true", "yes", "1":
		return "on", nil
	case "off", "false", "no", "0":
		return "off", nil
	}
	return "", fmt.Errorf("want on or off, not %q", s)
}

func intRange(lo, hi int) func(string) (string, error) {
	return func(s string) (string, error) {
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			return "", fmt.Errorf("want a whole number from %d to %d, not %q", lo, hi, s)
		}
		return strconv.Itoa(n), nil
	}
}

func probability(s string) (string, error) {
	t := strings.TrimSuffix(s, "%")
	f, err := strconv.ParseFloat(t, 64)
	if err == nil && t != s {
		f /= 100
	}
	if err != nil || f < 0 || f > 0.9 || f != f {
		return "", fmt.Errorf("want a probability from 0 to 0.9 (or 0%% to 90%%), not %q", s)
	}
	return strconv.FormatFloat(f, 'g', -1, 64), nil
}

func durationMax(maxD time.Duration) func(string) (string, error) {
	return func(s string) (string, error) {
		t := s
		if _, err := strconv.Atoi(s); err == nil {
			t = s + "ms"
		}
		d, err := time.ParseDuration(t)
		if err != nil || d < 0 || d > maxD {
			return "", fmt.Errorf("want a duration from 0 to %v (e.g. 50ms; a bare number is milliseconds), not %q", maxD, s)
		}
		return d.String(), nil
	}
}

func durationRange(lo, hi time.Duration) func(string) (string, error) {
	return func(s string) (string, error) {
		d, err := time.ParseDuration(s)
		if err != nil || d < lo || d > hi {
			return "", fmt.Errorf("want a duration from %v to %v (e.g. 30s), not %q", lo, hi, s)
		}
		return d.String(), nil
	}
}

func rateValue(s string) (string, error) {
	switch strings.ToLower(s) {
	case "0", "off", "none", "unlimited":
		return "unlimited", nil
	}
	n, err := parseSize(s)
	if err != nil {
		return "", err
	}
	if n < 10_000 {
		return "", fmt.Errorf("rate %q is below 10kB/s", s)
	}
	return strings.ReplaceAll(strings.ReplaceAll(humanBytes(n), ".0 ", " "), " ", "") + "/s", nil
}

func chunkValue(s string) (string, error) {
	if strings.ToLower(s) == "auto" {
		return "auto", nil
	}
	n, err := parseSize(s)
	if err != nil {
		return "", err
	}
	if n < MinChunk || n > MaxChunk {
		return "", fmt.Errorf("chunk size must be auto or from %d to %d bytes, not %q", MinChunk, MaxChunk, s)
	}
	return strconv.FormatInt(n, 10), nil
}

// Chunk sizes a user may ask for with `set chunk`.
const (
	MinChunk = 1200
	MaxChunk = 65000
)

func newSettings() *Settings {
	defs := []*setting{
		{name: "parallel", help: "downloads that run at once (the rest queue)", def: "4", parse: intRange(1, 64)},
		{name: "errexit", help: "stop a script at the first failed command", def: "on", values: []string{"on", "off"}, parse: onOff},
		{name: "color", help: "colour on a terminal", def: "on", values: []string{"on", "off"}, parse: onOff},
		{name: "format", help: "output of list, search, peers, jobs, stats, status: text, or json (one document per command, as with --json)", def: "text", values: []string{"text", "json"}, parse: oneOf("text", "json")},
		{name: "trace", help: "print protocol messages as they pass: on (a summary), all (every one), off", def: "off", values: []string{"on", "all", "off"}, parse: traceLevel},
		{name: "chunk", help: "UDP chunk size for new downloads (auto negotiates)", def: "auto", values: []string{"auto", "1200", "8192", "65000"}, parse: chunkValue},
		{name: "loss", help: "drop this fraction of datagrams sent and received (demo)", def: "0", values: []string{"0", "0.05", "0.2"}, parse: probability},
		{name: "dup", help: "duplicate this fraction of datagrams (demo)", def: "0", values: []string{"0", "0.05"}, parse: probability},
		{name: "reorder", help: "delay this fraction of datagrams past later ones (demo)", def: "0", values: []string{"0", "0.05"}, parse: probability},
		{name: "delay", help: "add this one-way delay to every datagram (demo)", def: "0s", values: []string{"0", "10ms", "50ms"}, parse: durationMax(10 * time.Second)},
		{name: "rate", help: "cap this process's UDP sending rate (e.g. 20MB/s)", def: "unlimited", values: []string{"unlimited", "1MB/s", "20MB/s"}, parse: rateValue},
		{name: "timeout", help: "how long a silent file server is retried before a download fails", def: "15s", values: []string{"5s", "15s", "1m"}, parse: durationRange(time.Second, time.Hour)},
		{name: "verify", help: "check downloads per 64 KiB group as they land (groups) or whole at the end (whole)", def: "groups", values: []string{"groups", "whole"}, parse: oneOf("groups", "whole")},
		{name: "seed", help: "offer the parts of downloads checked so far, and finished downloads, to other downloaders", def: "on", values: []string{"on", "off"}, parse: onOff},
		{name: "autoaccept", help: "accept pushed files without asking (off: each offer waits for accept)", def: "off", values: []string{"on", "off"}, parse: onOff},
	}
	s := &Settings{defs: map[string]*setting{}, vals: map[string]string{}}
	for _, d := range defs {
		s.defs[d.name] = d
		s.vals[d.name] = d.def
	}
	return s
}

// Names returns the setting names, sorted.
func (s *Settings) Names() []string {
	var out []string
	for n := range s.defs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Get returns a setting's canonical value.
func (s *Settings) Get(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vals[key]
}

// On reports whether an on/off setting is on.
func (s *Settings) On(key string) bool { return s.Get(key) == "on" }

// Int returns an integer setting.
func (s *Settings) Int(key string) int {
	n, _ := strconv.Atoi(s.Get(key))
	return n
}

// Float returns a numeric setting.
func (s *Settings) Float(key string) float64 {
	f, _ := strconv.ParseFloat(s.Get(key), 64)
	return f
}

// Duration returns a duration setting.
func (s *Settings) Duration(key string) time.Duration {
	d, _ := time.ParseDuration(s.Get(key))
	return d
}

// Bytes returns a size or rate setting in bytes (0 for auto/unlimited).
func (s *Settings) Bytes(key string) int64 {
	n, err := parseSize(s.Get(key))
	if err != nil {
		return 0
	}
	return n
}

// Set validates and stores a value, then runs the hooks.
func (s *Settings) Set(key, val string) (string, error) {
	d, ok := s.defs[key]
	if !ok {
		msg := fmt.Sprintf("unknown setting %q", key)
		if sug := suggest(key, s.Names()); sug != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", sug)
		}
		return "", fmt.Errorf("%s; settings: %s", msg, strings.Join(s.Names(), ", "))
	}
	v, err := d.parse(val)
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	s.mu.Lock()
	s.vals[key] = v
	hooks := append([]func(string, string){}, s.hooks...)
	s.mu.Unlock()
	for _, h := range hooks {
		h(key, v)
	}
	return v, nil
}

// OnChange registers a hook run after every successful Set.
func (s *Settings) OnChange(f func(key, val string)) {
	s.mu.Lock()
	s.hooks = append(s.hooks, f)
	s.mu.Unlock()
}

// applyImpair pushes the demo settings into the process's Impair.
func (s *Shell) applyImpair() error {
	return s.impair.Set(transfer.ImpairSettings{
		Loss:    s.set.Float("loss"),
		Dup:     s.set.Float("dup"),
		Reorder: s.set.Float("reorder"),
		Delay:   s.set.Duration("delay"),
		Rate:    s.set.Bytes("rate"),
	})
}

// oneOf accepts exactly one of the given words.
func oneOf(words ...string) func(string) (string, error) {
	return func(v string) (string, error) {
		for _, w := range words {
			if strings.EqualFold(v, w) {
				return w, nil
			}
		}
		return "", fmt.Errorf("want one of %s, not %q", strings.Join(words, ", "), v)
	}
}
