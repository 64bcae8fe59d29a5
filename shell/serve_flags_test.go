package shell

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/store/etcdcat"
)

func TestParseMasterTTL(t *testing.T) {
	for _, tc := range []struct {
		in      string
		ttl, hb time.Duration
		err     string
	}{
		{in: "", ttl: line.DefaultTTL, hb: line.DefaultHeartbeat},
		{in: "3s", ttl: 3 * time.Second, hb: time.Second},
		{in: "30s", ttl: 30 * time.Second, hb: 10 * time.Second},
		{in: "4s", ttl: 4 * time.Second, hb: 4 * time.Second / 3},
		{in: "1h", ttl: MaxMasterTTL, hb: 20 * time.Minute},
		{in: "2s", err: "from 3s to 1h0m0s"},
		{in: "1h0m1s", err: "from 3s to 1h0m0s"},
		{in: "3.5s", err: "whole seconds"},
		{in: "-5s", err: "whole seconds"},
		{in: "0", err: "whole seconds"},
		{in: "ten", err: "want a duration"},
		{in: "30", err: "want a duration"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			ttl, hb, err := parseMasterTTL(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseMasterTTL(%q) = %v, %v, %v; want error with %q", tc.in, ttl, hb, err, tc.err)
				}
				return
			}
			if err != nil || ttl != tc.ttl || hb != tc.hb {
				t.Fatalf("parseMasterTTL(%q) = %v, %v, %v; want %v, %v", tc.in, ttl, hb, err, tc.ttl, tc.hb)
			}
		})
	}
}

func TestParseEtcdPrefix(t *testing.T) {
	long := strings.Repeat("a", MaxEtcdPrefix)
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "", want: etcdcat.DefaultPrefix},
		{in: "lab2", want: "/lab2" + etcdcat.DefaultPrefix},
		{in: "school/lab-2_b.x", want: "/school/lab-2_b.x" + etcdcat.DefaultPrefix},
		{in: long, want: "/" + long + etcdcat.DefaultPrefix},
		{in: long + "a", err: "at most 128"},
		{in: "a//b", err: "empty"},
		{in: "a/", err: "empty"},
		{in: "../x", err: ".."},
		{in: "a/./b", err: "."},
		{in: "a b", err: "only letters"},
		{in: "a\nb", err: "only letters"},
		{in: "é", err: "only letters"},
		{in: "a:b", err: "only letters"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseEtcdPrefix(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseEtcdPrefix(%q) = %q, %v; want error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseEtcdPrefix(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestOpenCatalogErrors: a bad --store fails before any connection.
func TestOpenCatalogErrors(t *testing.T) {
	for _, tc := range []struct{ spec, err string }{
		{"redis://x:1", "want etcd://"},
		{"etcd://", "want etcd://"},
		{"etcd:///lab", "no etcd endpoint"},
		{"etcd://,", "no etcd endpoint"},
		{"etcd://host", "bad etcd endpoint"},
		{"etcd://h:1/a//b", "bad etcd prefix"},
		{"etcd://h:1/a b", "bad etcd prefix"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			cat, _, err := openCatalog(context.Background(), tc.spec, line.DefaultTTL)
			if cat != nil {
				cat.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("openCatalog(%q): %v; want error with %q", tc.spec, err, tc.err)
			}
		})
	}
	cat, name, err := openCatalog(context.Background(), "memory", 5*time.Second)
	if err != nil || name != "in memory" {
		t.Fatalf("openCatalog(memory) = %q, %v", name, err)
	}
	cat.Close()
}
