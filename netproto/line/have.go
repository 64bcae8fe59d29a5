package line

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// A have list says which 64 KiB groups of a file a partial source holds
// (SEED, SOURCES): "all", or ranges of group indexes, ascending, disjoint
// and not touching, written "A-B" (A to B inclusive) or "A", joined by
// commas: "0-99,120,130-140". At most MaxHaveRanges ranges: a source with
// more lists the first ones (it may offer less than it holds, never more).

// MaxHaveRanges caps the ranges of a have list, and MaxHaveBytes its
// length, so a SEED line stays below MaxLine with the hash, size and
// address. A downloader fetching in scattered 256 KiB pieces holds a
// hundred or more runs half way through a 256 MiB file; 64 were too few
// (its peers then saw only the start of what it holds).
const (
	MaxHaveRanges = 200
	MaxHaveBytes  = 3400
)

// HaveAll is the have list of a source that holds every group.
const HaveAll = "all"

// GroupRange is the groups [First, End) of a have list.
type GroupRange struct{ First, End int }

// ErrBadHave is a have list that breaks the rules above.
var ErrBadHave = errors.New("bad have list")

// AppendHave appends the have list of rs (which must be valid for n
// groups); an rs of one range covering all n groups is written "all".
func AppendHave(b []byte, rs []GroupRange, n int) []byte {
	if len(rs) == 1 && rs[0].First == 0 && rs[0].End == n {
		return append(b, HaveAll...)
	}
	for i, r := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(r.First), 10)
		if r.End-r.First > 1 {
			b = append(b, '-')
			b = strconv.AppendInt(b, int64(r.End-1), 10)
		}
	}
	return b
}

// ParseHave reads a have list of a file of n groups.
func ParseHave(s string, n int) ([]GroupRange, error) {
	if s == HaveAll {
		if n == 0 {
			return nil, nil
		}
		return []GroupRange{{0, n}}, nil
	}
	if s == "" {
		return nil, nil
	}
	if len(s) > MaxHaveBytes {
		return nil, fmt.Errorf("%w: %d bytes (at most %d)", ErrBadHave, len(s), MaxHaveBytes)
	}
	parts := strings.Split(s, ",")
	if len(parts) > MaxHaveRanges {
		return nil, fmt.Errorf("%w: %d ranges (at most %d)", ErrBadHave, len(parts), MaxHaveRanges)
	}
	rs := make([]GroupRange, 0, len(parts))
	for _, p := range parts {
		a, b, dash := strings.Cut(p, "-")
		first, err1 := parseIndex(a)
		last, err2 := first, error(nil)
		if dash {
			last, err2 = parseIndex(b)
		}
		if err1 != nil || err2 != nil || last < first || last >= n {
			return nil, fmt.Errorf("%w: %q (a file of %d groups)", ErrBadHave, p, n)
		}
		if k := len(rs); k > 0 && first <= rs[k-1].End {
			return nil, fmt.Errorf("%w: %q is not above the range before it", ErrBadHave, p)
		}
		rs = append(rs, GroupRange{first, last + 1})
	}
	return rs, nil
}

func parseIndex(s string) (int, error) {
	if s == "" || len(s) > 10 || s[0] == '0' && len(s) > 1 {
		return 0, errors.New("bad index")
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, errors.New("bad index")
	}
	return v, nil
}
