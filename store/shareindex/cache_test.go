package shareindex

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

var cacheSamples = []CacheEntry{
	{Path: "/srv/a.txt", Size: 3, MTime: 1700000000123456789, Dev: 2049, Ino: 1234, Type: "text",
		Hash: "9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0"},
	{Path: "/srv/with space/ünï \"quoted\"\\.bin", Size: 0, MTime: 0, Dev: 0, Ino: 0, Type: "bin",
		Hash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	{Path: "/srv/\xff\x01raw\nbytes", Size: 1 << 40, MTime: 1, Dev: 1<<64 - 1, Ino: 1<<64 - 1, Type: "mp4",
		Hash: strings.Repeat("ab", 32)},
}

func TestCacheRoundTrip(t *testing.T) {
	for _, entries := range [][]CacheEntry{nil, cacheSamples[:1], cacheSamples} {
		b := AppendCache(nil, entries)
		got, n, err := ParseCache(b)
		if err != nil || n != len(b) {
			t.Fatalf("ParseCache = %d, %v", n, err)
		}
		if len(entries) == 0 && len(got) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, entries) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, entries)
		}
	}
}

func TestParseCacheRejects(t *testing.T) {
	good := string(AppendCache(nil, cacheSamples[:1]))
	line := strings.SplitN(good, "\n", 2)[1]
	hash := cacheSamples[0].Hash
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"no newline", "fxsh-hashcache 2"},
		{"other version (SHA-256 hashes)", "fxsh-hashcache 1\n"},
		{"other magic", "something 1\n"},
		{"unterminated", good[:len(good)-1]},
		{"too few fields", "fxsh-hashcache 2\n" + hash + " 3 1 2 3\n"},
		{"leading zero", strings.Replace(good, " 3 ", " 03 ", 1)},
		{"signed", strings.Replace(good, " 3 ", " +3 ", 1)},
		{"negative", strings.Replace(good, " 3 ", " -3 ", 1)},
		{"huge", strings.Replace(good, " 3 ", " 99999999999999999999 ", 1)},
		{"size over int64", strings.Replace(good, " 3 ", " 9223372036854775808 ", 1)},
		{"upper-case hash", strings.Replace(good, hash, strings.ToUpper(hash), 1)},
		{"short hash", strings.Replace(good, hash, hash[:63], 1)},
		{"bad type", strings.Replace(good, " text ", " TEXT ", 1)},
		{"long type", strings.Replace(good, " text ", " "+strings.Repeat("t", maxTypeLen+1)+" ", 1)},
		{"unquoted path", strings.Replace(good, `"/srv/a.txt"`, `/srv/a.txt`, 1)},
		{"non-canonical quote", strings.Replace(good, `"/srv/a.txt"`, `"/srv/\x61.txt"`, 1)},
		{"raw quote", strings.Replace(good, `"/srv/a.txt"`, "`/srv/a.txt`", 1)},
		{"empty path", strings.Replace(good, `"/srv/a.txt"`, `""`, 1)},
		{"trailing junk", good + line[:10]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := ParseCache([]byte(tt.in)); err == nil {
				t.Errorf("ParseCache(%q) succeeded", tt.in)
			}
		})
	}
}

func FuzzParseCache(f *testing.F) {
	f.Add(AppendCache(nil, nil))
	f.Add(AppendCache(nil, cacheSamples))
	for _, e := range cacheSamples {
		f.Add(AppendCache(nil, []CacheEntry{e}))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, n, err := ParseCache(b)
		if err != nil {
			return
		}
		if n != len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		for _, e := range entries {
			if err := e.validate(); err != nil {
				t.Fatalf("parsed an invalid entry %+v: %v", e, err)
			}
		}
		if again := AppendCache(nil, entries); !bytes.Equal(again, b) {
			t.Fatalf("not a mirror image:\n in %q\nout %q", b, again)
		}
	})
}

func TestTypeOf(t *testing.T) {
	tests := []struct {
		name string
		head string
		want string
	}{
		{"a.TXT", "", "text"},
		{"photo.JPG", "not really a jpeg", "jpg"},
		{"report.docx", "PK\x03\x04", "doc"},
		{"noext", "just some words\n", "text"},
		{"noext", "\x89PNG\r\n\x1a\n", "png"},
		{"noext", "%PDF-1.7\n", "pdf"},
		{"noext", "PK\x03\x04rest", "zip"},
		{"noext", "\x00\x01\x02\x03\xfe", "bin"},
		{"noext", "<!DOCTYPE html><html>", "html"},
		{"noext", "", "text"},
		{"movie", "\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "mp4"},
		{"archive.weird", "\x1f\x8b\x08\x00", "gz"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+tt.want, func(t *testing.T) {
			if got := TypeOf(tt.name, []byte(tt.head)); got != tt.want {
				t.Errorf("TypeOf(%q, %q) = %q, want %q", tt.name, tt.head, got, tt.want)
			}
		})
	}
}
