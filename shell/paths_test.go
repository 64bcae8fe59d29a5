package shell

import (
	"errors"
	"strings"
	"testing"
)

func TestExpandPath(t *testing.T) {
	env := map[string]string{"HOME": "/home/ann", "DL": "/data/dl", "EMPTY": "", "A_1": "x"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	home := func(who string) (string, error) {
		switch who {
		case "":
			return "/home/ann", nil
		case "bob":
			return "/home/bob", nil
		}
		return "", errors.New("~" + who + ": no such user")
	}
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "plain/file.txt", want: "plain/file.txt"},
		{in: "~", want: "/home/ann"},
		{in: "~/dl", want: "/home/ann/dl"},
		{in: "~bob/inbox", want: "/home/bob/inbox"},
		{in: "~nobody/x", err: "no such user"},
		{in: "a/~/b", want: "a/~/b"}, // only a leading ~
		{in: "$DL/week3", want: "/data/dl/week3"},
		{in: "${DL}x", want: "/data/dlx"},
		{in: "~/$A_1/y", want: "/home/ann/x/y"},
		{in: "$UNSET/x", err: "$UNSET is not set"},
		{in: "${UNSET}", err: "$UNSET is not set"},
		{in: "${bad name}", err: "bad variable name"},
		{in: "${DL", err: "unterminated"},
		{in: "price$", want: "price$"},
		{in: "a$-b", want: "a$-b"},
		{in: "cost$$5", want: "cost$5"},
		{in: "$$HOME", want: "$HOME"},
		{in: "$EMPTY", err: "empty path"},
		{in: "", want: ""},
	} {
		got, err := expandPath(tc.in, lookup, home)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("expandPath(%q) = %q, %v; want error containing %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("expandPath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
