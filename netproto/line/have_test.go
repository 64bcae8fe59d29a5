package line

import (
	"reflect"
	"testing"
)

func TestHave(t *testing.T) {
	good := []struct {
		in   string
		n    int
		want []GroupRange
	}{
		{"all", 5, []GroupRange{{0, 5}}},
		{"", 5, nil},
		{"0", 5, []GroupRange{{0, 1}}},
		{"0-2,4", 5, []GroupRange{{0, 3}, {4, 5}}},
		{"1-3", 4, []GroupRange{{1, 4}}},
	}
	for _, g := range good {
		got, err := ParseHave(g.in, g.n)
		if err != nil || !reflect.DeepEqual(got, g.want) {
			t.Errorf("ParseHave(%q, %d) = %v, %v; want %v", g.in, g.n, got, err, g.want)
		}
		if g.in != "" && string(AppendHave(nil, got, g.n)) != g.in {
			t.Errorf("AppendHave(%v) = %q, want %q", got, AppendHave(nil, got, g.n), g.in)
		}
	}
	for _, in := range []string{"5", "0-5", "2-1", "0,0", "0-1,1", "0-1,2", "01", "-1", "a", "0,", ",0", "1-", "99999999999"} {
		if rs, err := ParseHave(in, 5); err == nil {
			t.Errorf("ParseHave(%q) = %v, want an error", in, rs)
		}
	}
	long := string(AppendHave(nil, func() (rs []GroupRange) {
		for i := 0; i <= MaxHaveRanges; i++ {
			rs = append(rs, GroupRange{2 * i, 2*i + 1})
		}
		return rs
	}(), 1000))
	if _, err := ParseHave(long, 1000); err == nil {
		t.Error("more than MaxHaveRanges ranges parse")
	}
}

func FuzzParseHave(f *testing.F) {
	f.Add("0-2,4", 10)
	f.Add("all", 3)
	f.Add("1,3-7,9", 10)
	f.Fuzz(func(t *testing.T, in string, n int) {
		if n < 0 || n > 1<<30 {
			return
		}
		rs, err := ParseHave(in, n)
		if err != nil {
			return
		}
		back, err := ParseHave(string(AppendHave(nil, rs, n)), n)
		if err != nil || !reflect.DeepEqual(back, rs) {
			t.Fatalf("%q: %v does not round-trip: %v %v", in, rs, back, err)
		}
	})
}
