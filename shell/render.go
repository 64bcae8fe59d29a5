package shell

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/fatih/color"
)

// palette holds the shell's colours. Each colour is switched on or off on
// its own object, so nothing depends on fatih/color's package-level NoColor.
type palette struct {
	on                                   bool
	prompt, ok, err, warn, dim, head, hi *color.Color
}

func newPalette(on bool) *palette {
	p := &palette{
		prompt: color.New(color.FgCyan, color.Bold),
		ok:     color.New(color.FgGreen),
		err:    color.New(color.FgRed, color.Bold),
		warn:   color.New(color.FgYellow),
		dim:    color.New(color.Faint),
		head:   color.New(color.Bold),
		hi:     color.New(color.FgMagenta),
	}
	p.set(on)
	return p
}

func (p *palette) set(on bool) {
	p.on = on
	for _, c := range []*color.Color{p.prompt, p.ok, p.err, p.warn, p.dim, p.head, p.hi} {
		if on {
			c.EnableColor()
		} else {
			c.DisableColor()
		}
	}
}

// humanBytes formats n bytes with decimal units: 512 B, 1.2 kB, 3.4 MB.
func humanBytes(n int64) string {
	if n < 1000 {
		return strconv.FormatInt(n, 10) + " B"
	}
	units := []string{"kB", "MB", "GB", "TB", "PB", "EB"}
	f := float64(n)
	i := -1
	for f >= 999.95 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if f >= 100 {
		return fmt.Sprintf("%.0f %s", f, units[i])
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

// humanRate formats bytes per second.
func humanRate(bps float64) string {
	if bps <= 0 || math.IsNaN(bps) || math.IsInf(bps, 0) {
		return "-"
	}
	return strings.ReplaceAll(humanBytes(int64(bps)), " ", "") + "/s"
}

// humanDuration formats an ETA or an elapsed time compactly.
func humanDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

// parseSize reads a byte count: 1500, 64k, 64KiB, 1.5MB, 2G (k/M/G are
// decimal, Ki/Mi/Gi binary).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "/s"), "ps")
	num := strings.TrimRightFunc(t, func(r rune) bool { return r > '9' && r != '.' || r == ' ' })
	unit := strings.ToLower(strings.TrimSpace(t[len(num):]))
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || math.IsNaN(f) {
		return 0, fmt.Errorf("bad size %q (e.g. 1500, 64k, 20MB, 1GiB)", s)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
		"ki": 1 << 10, "kib": 1 << 10, "mi": 1 << 20, "mib": 1 << 20, "gi": 1 << 30, "gib": 1 << 30,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("bad size %q: unknown unit %q", s, unit)
	}
	v := f * mult
	if v > math.MaxInt64/2 {
		return 0, fmt.Errorf("bad size %q: too large", s)
	}
	return int64(v), nil
}

// bar draws a text progress bar of width cells for done/total.
func bar(done, total int64, width int) string {
	if width < 1 {
		return ""
	}
	frac := 0.0
	switch {
	case total > 0:
		frac = float64(done) / float64(total)
	case total == 0 && done == 0:
		frac = 0
	}
	if frac > 1 {
		frac = 1
	}
	full := int(frac * float64(width))
	var b strings.Builder
	b.WriteByte('[')
	b.WriteString(strings.Repeat("#", full))
	if full < width {
		b.WriteString(strings.Repeat(".", width-full))
	}
	b.WriteByte(']')
	return b.String()
}

// table renders rows as left-aligned columns separated by two spaces; the
// first row is the header. Columns listed in right are right-aligned. Cells
// are measured in screen cells, so CJK and emoji names line up. No width
// limit: see fitTable.
func table(p *palette, rows [][]string, right ...int) string {
	return fitTable(p, rows, tableFit{shrink: -1, right: right})
}

// tableFit says how a table meets a width.
type tableFit struct {
	width  int   // cells; 0: no limit
	shrink int   // the column shortened in the middle first (-1: none)
	drop   []int // then the columns dropped, in this order
	right  []int // right-aligned columns
}

// tableShrinkMin is the narrowest a shortened column gets.
const tableShrinkMin = 16

// tableWrapMin is the narrowest the last column gets when it wraps.
const tableWrapMin = 20

// fitTable renders rows within f.width cells. When they are too wide it
// shortens column f.shrink in the middle, down to tableShrinkMin cells;
// then drops the f.drop columns in order (the shortened column taking back
// the room they leave); then wraps a left-aligned last column under itself
// (down to tableWrapMin cells); what still does not fit is clipped with "…".
//
// Kept whole: the fitting steps act in order on the same column widths.
func fitTable(p *palette, rows [][]string, f tableFit) string {
	if len(rows) == 0 {
		return ""
	}
	isRight := map[int]bool{}
	for _, c := range f.right {
		isRight[c] = true
	}
	ncol := len(rows[0])
	full := make([]int, ncol)
	for _, r := range rows {
		for i, c := range r {
			if i < ncol {
				full[i] = max(full[i], cells(c))
			}
		}
	}
	keep := make([]bool, ncol)
	for i := range keep {
		keep[i] = true
	}
	colW := append([]int(nil), full...)
	avail := f.width - 1 // the last column stays free: no terminal auto-wrap
	total := func() int {
		n, k := 0, 0
		for i, w := range colW {
			if keep[i] {
				n += w
				k++
			}
		}
		return n + 2*max(0, k-1)
	}
	if f.width > 0 {
		canShrink := f.shrink >= 0 && f.shrink < ncol
		for d := 0; ; d++ {
			if canShrink {
				colW[f.shrink] = full[f.shrink]
				if over := total() - avail; over > 0 {
					colW[f.shrink] = max(min(full[f.shrink], tableShrinkMin), full[f.shrink]-over)
				}
			}
			if total() <= avail || d >= len(f.drop) {
				break
			}
			if c := f.drop[d]; c >= 0 && c < ncol {
				keep[c] = false
			}
		}
	}
	last := -1
	for i := range keep {
		if keep[i] {
			last = i
		}
	}
	wrapLast := f.width > 0 && !isRight[last] && total() > avail && avail-(total()-colW[last]) >= tableWrapMin
	if wrapLast {
		colW[last] = avail - (total() - colW[last])
	}
	indent := strings.Repeat(" ", total()-colW[last])
	var b strings.Builder
	for ri, r := range rows {
		var line strings.Builder
		first := true
		for i, c := range r {
			if i >= ncol || !keep[i] {
				continue
			}
			if !first {
				line.WriteString("  ")
			}
			first = false
			if cells(c) > colW[i] && !(i == last && wrapLast) {
				if i == f.shrink {
					c = shortenMiddle(c, colW[i])
				} else {
					c = clipCells(c, colW[i])
				}
			}
			switch {
			case i == last && wrapLast:
				line.WriteString(wrapText(c, avail, indent))
			case isRight[i]:
				line.WriteString(strings.Repeat(" ", max(0, colW[i]-cells(c))) + c)
			case i == last:
				line.WriteString(c)
			default:
				line.WriteString(padCells(c, colW[i]))
			}
		}
		out := line.String()
		if f.width > 0 && !wrapLast {
			out = clipCells(out, avail)
		}
		if ri == 0 {
			b.WriteString(p.head.Sprint(out))
		} else {
			b.WriteString(out)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// suggest returns the candidate closest to word by edit distance, or "" if
// none is close enough to be a likely typo. Among equally close candidates
// it prefers one of the same length (a transposition such as "stauts" for
// "status" is likelier than a dropped letter).
func suggest(word string, candidates []string) string {
	best, bestD, bestL := "", 3, 0
	for _, c := range candidates {
		d := editDistance(word, c)
		if d > max(1, len(word)/2) {
			continue
		}
		l := abs(len(c) - len(word))
		if d < bestD || d == bestD && (best == "" || l < bestL) {
			best, bestD, bestL = c, d, l
		}
	}
	return best
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// editDistance is the Damerau–Levenshtein (optimal string alignment) distance.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return 64
	}
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// plural writes n with the singular or plural noun: "1 file", "3 files".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
