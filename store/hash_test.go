package store

import (
	"errors"
	"strings"
	"testing"
)

func TestHash(t *testing.T) {
	// BLAKE3's published digest of the empty input.
	const empty = "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
	if got := HashBytes(nil).String(); got != empty {
		t.Fatalf("HashBytes(nil) = %s, want %s", got, empty)
	}
	h := NewHash()
	h.Write([]byte("abc"))
	if got, want := FormatHash(h.Sum(nil)), HashBytes([]byte("abc")).String(); got != want {
		t.Fatalf("streamed %s, one-shot %s", got, want)
	}
	sum, err := ParseHash(empty)
	if err != nil || sum.String() != empty {
		t.Fatalf("ParseHash round trip: %v %s", err, sum)
	}
	if len(empty) != HashLen {
		t.Fatalf("HashLen = %d, written hash is %d", HashLen, len(empty))
	}
	hex := strings.TrimPrefix(empty, HashPrefix)
	for _, bad := range []string{
		"", hex, "sha256:" + hex, HashPrefix + hex[:63], HashPrefix + hex + "0",
		HashPrefix + strings.ToUpper(hex), HashPrefix + "g" + hex[1:], "BLAKE3:" + hex,
	} {
		t.Run(bad, func(t *testing.T) {
			if ValidHash(bad) {
				t.Fatalf("ValidHash(%q) = true", bad)
			}
			if _, err := ParseHash(bad); !errors.Is(err, ErrBadHash) {
				t.Fatalf("ParseHash(%q) = %v, want ErrBadHash", bad, err)
			}
		})
	}
}
