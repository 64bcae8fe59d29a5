package shell

// jobline.go: one job as a line of `jobs` and `wait`, fitted to the width.

import (
	"fmt"
	"strings"
)

// renderJob formats one job for `jobs` and `wait` in at most width cells
// (0: no limit, every field at full length). When the line does not fit,
// the name is shortened in the middle (down to jobNameMin cells) and then
// fields are dropped in this order: sources, ETA, the bar (first narrowed
// to jobBarMin), the kind, the byte counts, the rate; id, state and the
// percentage always stay, and the name last of all. A failed job's error
// follows on lines of its own, wrapped to the width.
//
// Kept whole: the fields are dropped in one order from the same width.
func renderJob(p *palette, s JobSnapshot, width int) string {
	state := s.State.String()
	stateCol := p.warn
	switch s.State {
	case JobDone:
		stateCol = p.ok
	case JobFailed:
		stateCol = p.err
	case JobRunning:
		stateCol = nil
	}
	pct := "  -"
	if s.Total > 0 {
		pct = fmt.Sprintf("%3.0f%%", 100*float64(s.Done)/float64(s.Total))
	} else if s.Total == 0 && s.State == JobDone {
		pct = "100%"
	}
	total := "?"
	if s.Total >= 0 {
		total = humanBytes(s.Total)
	}
	done, tot := s.Done, s.Total
	if s.Total == 0 && s.State == JobDone {
		done, tot = 1, 1
	}
	eta := ""
	if s.State == JobRunning && s.ETA >= 0 {
		eta = "eta " + humanDuration(s.ETA)
	}
	sources := ""
	if len(s.Sources) > 0 {
		dir := "from "
		if s.Kind == "send" {
			dir = "to "
		}
		sources = dir + strings.Join(s.Sources, ",")
	}
	f := jobFields{
		id: fmt.Sprintf("[%d]", s.ID), state: state, kind: s.Kind, pct: pct,
		bytes: humanBytes(s.Done) + "/" + total, rate: humanRate(s.Rate), eta: eta,
		name: displayName(s.Name), sources: sources, barW: jobBarFull,
	}
	if width > 0 {
		f.fit(width - 1) // the last column stays free: no terminal auto-wrap
	}
	var b strings.Builder
	b.WriteString(f.id + " ")
	if stateCol != nil {
		b.WriteString(stateCol.Sprint(padCells(state, 9)))
	} else {
		b.WriteString(padCells(state, 9))
	}
	if f.kind != "" {
		b.WriteString(" " + f.kind)
	}
	if f.barW > 0 {
		b.WriteString(" " + bar(done, tot, f.barW))
	}
	b.WriteString(" " + f.pct)
	if f.bytes != "" {
		b.WriteString(" " + f.bytes)
	}
	if f.rate != "" {
		b.WriteString(" " + f.rate)
	}
	if f.eta != "" {
		b.WriteString(" " + f.eta)
	}
	if f.name != "" {
		b.WriteString("  " + f.name)
	}
	if f.sources != "" {
		b.WriteString(p.dim.Sprint("  " + f.sources))
	}
	if s.Err != nil && s.State == JobFailed {
		const indent = "    "
		msg := s.Err.Error()
		if width > 0 {
			msg = wrapText(msg, width-1-len("error: "), indent+"       ")
		}
		b.WriteString("\n" + indent + p.err.Sprint("error: ") + msg)
	}
	return b.String()
}

// Job line widths: the bar at full width, the narrowest bar worth drawing,
// and the shortest a name is cut to before fields are dropped.
const (
	jobBarFull = 20
	jobBarMin  = 10
	jobNameMin = 16
)

// jobFields are the parts of a job line, plain text; an empty field (or a
// zero bar width) is left out.
type jobFields struct {
	id, state, kind, pct, bytes, rate, eta, name, sources string
	barW                                                  int
}

// width returns the cells the line takes with the name at nameW cells.
func (f *jobFields) width(nameW int) int {
	n := cells(f.id) + 1 + 9 + 1 + cells(f.pct)
	for _, s := range []string{f.kind, f.bytes, f.rate, f.eta} {
		if s != "" {
			n += 1 + cells(s)
		}
	}
	if f.barW > 0 {
		n += 1 + f.barW + 2
	}
	if nameW > 0 {
		n += 2 + nameW
	}
	if f.sources != "" {
		n += 2 + cells(f.sources)
	}
	return n
}

// fit drops and shortens fields until the line fits in w cells.
func (f *jobFields) fit(w int) {
	drops := []func(){
		func() { f.sources = "" },
		func() { f.eta = "" },
		func() { f.barW = min(f.barW, jobBarMin) },
		func() { f.barW = 0 },
		func() { f.kind = "" },
		func() { f.bytes = "" },
		func() { f.rate = "" },
	}
	full := cells(f.name)
	for _, drop := range drops {
		if f.width(full) <= w {
			return
		}
		// Shorten the name first, down to its minimum.
		if nw := w - f.width(0) - 2; nw >= min(full, jobNameMin) {
			f.name = shortenMiddle(f.name, nw)
			return
		}
		drop()
	}
	if f.width(full) <= w {
		return
	}
	// Only id, state, percentage and the name are left: the name gets
	// what remains (at least one cell, the "…").
	f.name = shortenMiddle(f.name, max(1, w-f.width(0)-2))
}
