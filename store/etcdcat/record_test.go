package etcdcat

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fxshell/fxsh/store"
)

var recordFiles = []store.File{
	{},
	{Name: "a", Size: 1, Type: "text", MTime: time.Unix(1700000000, 0).UTC(), Hash: hashOf("a")},
	{Name: "a b/c=d\\e\nf 🎉.txt", Size: 1 << 50, Type: "jpg", MTime: time.Unix(1700000000, 999999999).UTC(), Hash: hashOf("b")},
	{Name: strings.Repeat("é", 600), MTime: time.Unix(-1, 5), Hash: hashOf("c")}, // local zone
	{Name: "max", MTime: time.Unix(maxUnix, 999999999).UTC()},
	{Name: "min", MTime: time.Unix(minUnix, 0).UTC()},
}

func TestFileRecordRoundTrip(t *testing.T) {
	for _, f := range recordFiles {
		t.Run(f.Name, func(t *testing.T) {
			b := appendFileRecord([]byte("prefix"), f)
			got, n, err := parseFileRecord(b[len("prefix"):])
			if err != nil || n != len(b)-len("prefix") {
				t.Fatalf("parse: %v, n=%d of %d", err, n, len(b)-len("prefix"))
			}
			if !reflect.DeepEqual(got, f) {
				t.Errorf("round trip = %#v, want %#v", got, f)
			}
		})
	}
}

func TestServerRecordRoundTrip(t *testing.T) {
	for _, s := range []serverRecord{
		{},
		{Role: store.RoleServer, Files: 10000, Registered: time.Unix(1700000000, 123).UTC()},
		{Role: store.RoleReceiver, Name: "bob 🎉", Registered: time.Unix(1700000000, 0)},
	} {
		b := appendServerRecord(nil, s)
		got, n, err := parseServerRecord(b)
		if err != nil || n != len(b) || !reflect.DeepEqual(got, s) {
			t.Errorf("round trip of %#v = %#v, n=%d of %d, %v", s, got, n, len(b), err)
		}
	}
}

func TestParseRecordErrors(t *testing.T) {
	good := appendFileRecord(nil, recordFiles[2])
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, errShortRecord},
		{"wrong version", append([]byte{'X'}, good[1:]...), errBadRecord},
		{"server record", appendServerRecord(nil, serverRecord{}), errBadRecord},
		{"truncated", good[:len(good)-1], errShortRecord},
		{"huge string", []byte{fileRecordV1, 0xff, 0xff, 0xff, 0xff, 0x0f}, errBadRecord},
		{"string past end", []byte{fileRecordV1, 10, 'a'}, errShortRecord},
		{"bad varint", append([]byte{fileRecordV1, 0}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), errBadRecord},
		{"negative size", appendFileRecord(nil, store.File{Size: -1}), errBadRecord},
		{"time flags", []byte{fileRecordV1, 0, 0, 0, 2, 0, 0, 0}, errBadRecord},
		{"nanoseconds", []byte{fileRecordV1, 0, 0, 0, 0, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03, 0}, errBadRecord},
		{"year 10000", appendFileRecord(nil, store.File{MTime: time.Unix(maxUnix+1, 0)}), errBadRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := parseFileRecord(tt.b); !errors.Is(err, tt.want) {
				t.Errorf("parseFileRecord(%q) = %v, want %v", tt.b, err, tt.want)
			}
		})
	}
	big := appendServerRecord(nil, serverRecord{Files: MaxFiles + 1})
	if _, _, err := parseServerRecord(big); !errors.Is(err, errBadRecord) {
		t.Errorf("server record with %d files: %v", MaxFiles+1, err)
	}
}

func TestKeys(t *testing.T) {
	const p = "/fxsh/v1/"
	tests := []struct {
		addr, name string
		lease      int64
	}{
		{"10.0.0.1:5000", "a.txt", 1},
		{"[::1]:80", "dir/sub/x y%2F.txt", 0x7fffffffffffffff},
		{"we/ird host:1", "..", 42},
	}
	for _, tt := range tests {
		sk := serverKey(p, tt.addr)
		addr, ok := parseServerKey(sk[len(p):])
		if !ok || addr != tt.addr {
			t.Errorf("parseServerKey(%q) = %q, %v", sk, addr, ok)
		}
		fk := fileKey(p, tt.addr, tt.lease, tt.name)
		if !strings.HasPrefix(fk, p+"files/") || strings.Count(fk[len(p):], "/") != 3 {
			t.Errorf("fileKey = %q: name or address not escaped", fk)
		}
		addr, lease, esc, ok := parseFileKey(fk[len(p):])
		if !ok || addr != tt.addr || lease != tt.lease || fk != filesKeyPrefix(p, addr, lease)+esc {
			t.Errorf("parseFileKey(%q) = %q %x %q %v", fk, addr, lease, esc, ok)
		}
	}
	for _, rel := range []string{"servers/", "servers/a/b", "servers/%zz", "files/a", "files/a/0000000000000001", "files//0000000000000001/x", "files/a/xyz/x", "files/a/000000000000000g/x", "files/%zz/0000000000000001/x", "other"} {
		if _, ok := parseServerKey(rel); ok && strings.HasPrefix(rel, "servers/") {
			t.Errorf("parseServerKey(%q) accepted", rel)
		}
		if _, _, _, ok := parseFileKey(rel); ok {
			t.Errorf("parseFileKey(%q) accepted", rel)
		}
	}
}

func FuzzParseFileRecord(f *testing.F) {
	for _, r := range recordFiles {
		f.Add(appendFileRecord(nil, r))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := parseFileRecord(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("n = %d > %d", n, len(b))
		}
		// What parses appends back to bytes that parse to the same record
		// (varints need not be minimal on input).
		again := appendFileRecord(nil, r)
		r2, n2, err := parseFileRecord(again)
		if err != nil || n2 != len(again) || !reflect.DeepEqual(r, r2) {
			t.Fatalf("re-encoding %#v: %#v, %d of %d, %v", r, r2, n2, len(again), err)
		}
	})
}

func FuzzParseServerRecord(f *testing.F) {
	f.Add(appendServerRecord(nil, serverRecord{}))
	f.Add(appendServerRecord(nil, serverRecord{Role: store.RoleServer, Name: "x", Files: 3, Registered: time.Unix(1700000000, 1).UTC()}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := parseServerRecord(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("n = %d > %d", n, len(b))
		}
		again := appendServerRecord(nil, r)
		r2, n2, err := parseServerRecord(again)
		if err != nil || n2 != len(again) || !reflect.DeepEqual(r, r2) {
			t.Fatalf("re-encoding %#v: %#v, %d of %d, %v", r, r2, n2, len(again), err)
		}
	})
}
