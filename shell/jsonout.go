package shell

// Machine-readable output: list, search, peers, jobs, stats and status
// print one JSON document per command with --json (or after `set format
// json`), on one line, with the field names below. They are part of fxsh's
// interface (README, "JSON output"): fields may be added, never renamed or
// removed. Sizes and byte counts are integers in bytes, rates in bytes per
// second, durations in milliseconds, times in RFC 3339.

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/fxshell/fxsh/netproto/transfer"
	"github.com/fxshell/fxsh/store"
)

// takeJSONFlag removes every "--json" from args (before a "--").
func takeJSONFlag(args []string) ([]string, bool) {
	var out []string
	found := false
	for i, a := range args {
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		if a == "--json" {
			found = true
			continue
		}
		out = append(out, a)
	}
	return out, found
}

// outJSON prints v as one JSON document on one line.
func (s *Shell) outJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding json: %w", err)
	}
	s.out("%s\n", b)
	return nil
}

// jsonFile is one catalog entry (list, search).
type jsonFile struct {
	Name    string   `json:"name"`
	Size    int64    `json:"size"`
	Type    string   `json:"type"`
	MTime   string   `json:"mtime"`
	Hash    string   `json:"hash"`
	Servers []string `json:"servers"`
}

// jsonFiles is the document of list and search: the files, and whether the
// master had more than it sent.
type jsonFiles struct {
	Files []jsonFile `json:"files"`
	More  bool       `json:"more"`
}

func filesJSON(entries []store.Entry, more bool) jsonFiles {
	d := jsonFiles{Files: []jsonFile{}, More: more}
	for _, e := range entries {
		d.Files = append(d.Files, jsonFile{Name: e.Name, Size: e.Size, Type: e.Type,
			MTime: e.MTime.UTC().Format(time.RFC3339), Hash: e.Hash, Servers: append([]string{}, e.Servers...)})
	}
	return d
}

// jsonPeer is one file server or receiver (peers).
type jsonPeer struct {
	Addr       string `json:"addr"`
	Role       string `json:"role"`
	Name       string `json:"name"`
	Files      int    `json:"files"`
	Registered string `json:"registered"`
}

func peersJSON(peers []store.Server) any {
	out := []jsonPeer{}
	for _, p := range peers {
		out = append(out, jsonPeer{Addr: p.Addr, Role: p.Role, Name: p.Name, Files: p.Files,
			Registered: p.Registered.UTC().Format(time.RFC3339)})
	}
	return struct {
		Peers []jsonPeer `json:"peers"`
	}{out}
}

// jsonJob is one job (jobs). ETA is -1 when unknown; total -1 when the
// size is not known yet; error is "" unless the job failed.
type jsonJob struct {
	ID        int               `json:"id"`
	Kind      string            `json:"kind"`
	Name      string            `json:"name"`
	State     string            `json:"state"`
	Done      int64             `json:"done"`
	Total     int64             `json:"total"`
	Rate      int64             `json:"rate"`
	ETAMs     int64             `json:"eta_ms"`
	ElapsedMs int64             `json:"elapsed_ms"`
	Sources   []string          `json:"sources"`
	Error     string            `json:"error"`
	Counters  map[string]string `json:"counters,omitempty"`
}

func jobsJSON(snaps []JobSnapshot, groups []groupSnapshot, verbose bool) any {
	out := []jsonJob{}
	for _, sn := range snaps {
		j := jsonJob{ID: sn.ID, Kind: sn.Kind, Name: sn.Name, State: sn.State.String(), Done: sn.Done,
			Total: sn.Total, Rate: int64(sn.Rate), ETAMs: -1, ElapsedMs: sn.Elapsed.Milliseconds(),
			Sources: append([]string{}, sn.Sources...)}
		if sn.ETA >= 0 {
			j.ETAMs = sn.ETA.Milliseconds()
		}
		if sn.Err != nil && sn.State == JobFailed {
			j.Error = sn.Err.Error()
		}
		if verbose && len(sn.Counters) > 0 {
			j.Counters = map[string]string{}
			n := 0
			for _, c := range sn.Counters {
				k := c.Name
				if k == liveCounter {
					continue // drawings for a terminal (the chunk map, sparklines)
				}
				if k == sourceCounter {
					n++
					k = fmt.Sprintf("source%d", n)
				}
				j.Counters[k] = c.Value
			}
		}
		out = append(out, j)
	}
	return struct {
		Jobs   []jsonJob   `json:"jobs"`
		Groups []jsonGroup `json:"groups"` // folder downloads (get -r, mirror): jobgroup.go
	}{out, groupsJSON(groups)}
}

// statsJSON names the process's counters (stats).
func statsJSON(st transfer.Stats) any {
	return map[string]map[string]int64{"counters": {
		"datagrams_sent":      st.DatagramsSent,
		"datagrams_received":  st.DatagramsReceived,
		"bytes_sent":          st.BytesSent,
		"bytes_received":      st.BytesReceived,
		"chunks_sent":         st.ChunksSent,
		"chunks_received":     st.ChunksReceived,
		"retransmits":         st.Retransmits,
		"duplicates":          st.Duplicates,
		"losses_detected":     st.Losses,
		"timeouts":            st.Timeouts,
		"crc_drops":           st.CRCDrops,
		"auth_drops":          st.AuthDrops,
		"malformed":           st.Malformed,
		"hostile":             st.Hostile,
		"impairment_drops":    st.ImpairDrops,
		"cookie_retries":      st.Retries,
		"busy_replies":        st.BusyReplies,
		"not_yet_replies":     st.NotYetReplies,
		"leaving_replies":     st.LeavingReplies,
		"groups_verified":     st.GroupsVerified,
		"groups_failed":       st.GroupsFailed,
		"groups_read_back":    st.GroupsReadBack,
		"groups_inline":       st.GroupsInline,
		"timer_wakeups":       st.Wakeups,
		"sources_dropped":     st.LiarsDropped,
		"transfers_started":   st.TransfersStarted,
		"transfers_active":    st.TransfersActive,
		"rtt_us":              st.RTT.Microseconds(),
		"cwnd_bytes":          st.Cwnd,
		"pacing_rate_bytes_s": int64(st.PacingRate),
	}}
}

// jsonStatus is the document of status.
type jsonStatus struct {
	Masters   []string     `json:"masters"`
	Downloads string       `json:"downloads"`
	Key       bool         `json:"key"`
	Roles     []jsonRole   `json:"roles"`
	Jobs      jsonJobCount `json:"jobs"`
}

type jsonRole struct {
	Name     string `json:"name"`
	Describe string `json:"describe"`
}

type jsonJobCount struct {
	Active int `json:"active"`
	All    int `json:"all"`
}

func (s *Shell) statusJSON() any {
	d := jsonStatus{Masters: append([]string{}, s.masters()...), Downloads: s.opts.Dir, Key: s.opts.Key != "", Roles: []jsonRole{},
		Jobs: jsonJobCount{Active: len(s.jobs.Active()), All: len(s.jobs.List())}}
	s.mu.Lock()
	order := append([]string(nil), s.roleOrder...)
	s.mu.Unlock()
	for _, name := range order {
		if r := s.role(name); r != nil {
			d.Roles = append(d.Roles, jsonRole{Name: name, Describe: r.Describe()})
		}
	}
	return d
}
