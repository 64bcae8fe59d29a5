package shell

import (
	"strings"

	"github.com/mattn/go-runewidth"
)

// Screen widths. Everything the shell lays out is measured in terminal
// cells, not bytes or runes: a CJK character or most emoji take two cells, a
// combining accent none. A width of 0 means "no limit" (output that is not a
// terminal: a pipe, a file, a test), where lines keep their full length so
// scripts can read every field.

// cells returns how many terminal cells s takes, ignoring ANSI escapes.
func cells(s string) int {
	if strings.IndexByte(s, 0x1b) >= 0 {
		s = stripANSI(s)
	}
	return runewidth.StringWidth(s)
}

// stripANSI removes CSI escape sequences (colours, cursor moves).
func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			i = j
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// padCells pads s with spaces to w cells (no-op if it is already wider).
func padCells(s string, w int) string {
	if n := cells(s); n < w {
		return s + strings.Repeat(" ", w-n)
	}
	return s
}

// ellipsis marks text taken out of a shortened name or a clipped line.
const ellipsis = "…"

// shortenMiddle fits a plain string (no escapes) into w cells by cutting its
// middle: "lecture-…-final.pdf" keeps both the start and the extension,
// which tell names apart better than either alone.
func shortenMiddle(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if runewidth.StringWidth(s) <= w {
		return s
	}
	if w == 1 {
		return ellipsis
	}
	rs := []rune(s)
	keepTail := (w - 1) / 2
	keepHead := w - 1 - keepTail
	var head, tail []rune
	n := 0
	for _, r := range rs {
		rw := runewidth.RuneWidth(r)
		if n+rw > keepHead {
			break
		}
		head = append(head, r)
		n += rw
	}
	n = 0
	for i := len(rs) - 1; i >= len(head); i-- {
		rw := runewidth.RuneWidth(rs[i])
		if n+rw > keepTail {
			break
		}
		tail = append([]rune{rs[i]}, tail...)
		n += rw
	}
	// A wide rune that did not fit on one side leaves a cell: pad it, so
	// the result is exactly w cells.
	return padCells(string(head)+ellipsis+string(tail), w)
}

// clipCells cuts a plain string to at most w cells, marking the cut.
func clipCells(s string, w int) string {
	if w <= 0 || runewidth.StringWidth(s) <= w {
		return s
	}
	return runewidth.Truncate(s, w, ellipsis)
}

// wrapText fills text to lines of at most width cells, each after indent;
// the first line is not indented: the caller has placed it after something
// as wide as indent (a hanging indent). A single "\n"
// in text is a space (prose hard-wrapped in the source), "\n\n" starts a new
// paragraph. A word longer than a line is cut, never left to overflow.
// width 0 means no limit: the text comes back as one line per paragraph.
func wrapText(text string, width int, indent string) string {
	paras := strings.Split(text, "\n\n")
	var b strings.Builder
	for pi, para := range paras {
		if pi > 0 {
			b.WriteString("\n\n" + indent)
		}
		words := strings.Fields(para)
		avail := width - cells(indent)
		lineLen := 0
		for wi, w := range words {
			ww := cells(w)
			switch {
			case wi == 0:
			case width > 0 && lineLen+1+ww > avail:
				b.WriteString("\n" + indent)
				lineLen = 0
			default:
				b.WriteByte(' ')
				lineLen++
			}
			for width > 0 && avail > 0 && lineLen == 0 && ww > avail {
				// A word longer than a whole line: cut it.
				cut := runewidth.Truncate(w, avail, "")
				if cut == "" {
					break // one rune wider than the line: let it be
				}
				b.WriteString(cut + "\n" + indent)
				w = w[len(cut):]
				ww = cells(w)
			}
			b.WriteString(w)
			lineLen += ww
		}
	}
	return b.String()
}

// screenRows returns how many terminal rows text takes when printed at
// width cells (0: one row per line), counting the rows a long line wraps to.
func screenRows(text string, width int) int {
	text = strings.TrimSuffix(text, "\n")
	if text == "" {
		return 0
	}
	rows := 0
	for _, l := range strings.Split(text, "\n") {
		n := cells(l)
		if width <= 0 || n <= width {
			rows++
			continue
		}
		rows += (n + width - 1) / width
	}
	return rows
}
