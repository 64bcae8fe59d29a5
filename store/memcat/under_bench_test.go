package memcat

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/catalogtest"
)

// BenchmarkFilesUnderPages reads a folder of 100 000 files (ten servers of
// 10 000) by pages of 1000, as a mirror of it does.
func BenchmarkFilesUnderPages(b *testing.B) {
	c := New(time.Hour)
	defer c.Close()
	ctx := context.Background()
	for s := 0; s < 10; s++ {
		files := make([]store.File, 10000)
		for i := range files {
			files[i] = catalogtest.File(fmt.Sprintf("d/s%d/f%05d.txt", s, i), fmt.Sprint(s, i))
		}
		if err := c.Register(ctx, store.Server{Addr: fmt.Sprintf("h:%d", s), Role: store.RoleServer, Registered: time.Now()}, files); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		var cur store.Cursor
		n := 0
		for {
			es, err := c.FilesUnder(ctx, "d/", cur, 1000)
			if err != nil {
				b.Fatal(err)
			}
			if len(es) == 0 {
				break
			}
			n += len(es)
			cur = store.Cursor{Name: es[len(es)-1].Name, Hash: es[len(es)-1].Hash}
		}
		if n != 100000 {
			b.Fatal(n)
		}
	}
}

// TestFilesUnderAgainstFiles pages through random folders with random page
// sizes and compares with every entry filtered by the prefix.
func TestFilesUnderAgainstFiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	c := New(time.Hour)
	defer c.Close()
	ctx := context.Background()
	parts := []string{"a", "ab", "b", "x y", "é"}
	for s := range 5 {
		files := make([]store.File, 300)
		for i := range files {
			name := parts[rng.IntN(5)] + "/" + parts[rng.IntN(5)] + "/" + fmt.Sprint(rng.IntN(50))
			files[i] = catalogtest.File(name, fmt.Sprint(rng.IntN(3)))
		}
		slices.SortFunc(files, func(a, b store.File) int { return strings.Compare(a.Name, b.Name) })
		files = slices.CompactFunc(files, func(a, b store.File) bool { return a.Name == b.Name })
		if err := c.Register(ctx, store.Server{Addr: fmt.Sprintf("h:%d", s), Role: store.RoleServer, Registered: time.Now()}, files); err != nil {
			t.Fatal(err)
		}
	}
	all, err := c.Files(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"", "a/", "ab/", "x y/", "é/a/", "none/"} {
		var want, got []string
		for _, e := range all {
			if strings.HasPrefix(e.Name, prefix) {
				want = append(want, e.Name+"#"+e.Hash)
			}
		}
		var cur store.Cursor
		for {
			page, err := c.FilesUnder(ctx, prefix, cur, 1+rng.IntN(40))
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, e := range page {
				got = append(got, e.Name+"#"+e.Hash)
			}
			last := page[len(page)-1]
			cur = store.Cursor{Name: last.Name, Hash: last.Hash}
		}
		if !slices.Equal(got, want) {
			t.Errorf("prefix %q: pages give %d entries, want %d", prefix, len(got), len(want))
		}
	}
}
