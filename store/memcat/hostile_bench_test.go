package memcat

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/catalogtest"
)

// hostileFiles returns n files with random names of about size bytes of 2-
// and 3-byte UTF-8 (every gram different: the costliest names to index),
// each ending in " newmark-i".
func hostileFiles(seed uint64, n, size int) []store.File {
	rng := rand.New(rand.NewPCG(seed, 1))
	files := make([]store.File, n)
	for i := range files {
		var sb strings.Builder
		for sb.Len() < size-16 {
			if rng.IntN(2) == 0 {
				sb.WriteRune(rune(0xa0 + rng.IntN(0x7ff-0xa0)))
			} else {
				sb.WriteRune(rune(0x4e00 + rng.IntN(0x9fff-0x4e00)))
			}
		}
		fmt.Fprintf(&sb, " newmark-%d", i)
		files[i] = catalogtest.File(sb.String(), fmt.Sprint(seed, i))
	}
	return files
}

// oldFiles is the list the hostile server had before: n files "oldmark-i".
func oldFiles(n int) []store.File {
	files := make([]store.File, n)
	for i := range files {
		files[i] = catalogtest.File(fmt.Sprintf("share/oldmark-%d.txt", i), fmt.Sprint("old", i))
	}
	return files
}

// marks counts the old and new files of the hostile server that a search
// for "mark" lists.
func marks(t *testing.T, c *Catalog) (old, new int) {
	m := marksOf(t, c)
	return m[0], m[1]
}

func marksOf(t *testing.T, c *Catalog) [2]int {
	t.Helper()
	es, err := c.Search(context.Background(), "mark", 1<<20)
	if err != nil {
		t.Errorf("search mark: %v", err)
	}
	var m [2]int
	for _, e := range es {
		switch {
		case strings.Contains(e.Name, "oldmark-"):
			m[0]++
		case strings.Contains(e.Name, "newmark-"):
			m[1]++
		}
	}
	return m
}

// BenchmarkRegisterHostile registers the worst one peer may send the
// master, 10 000 files with 1 KiB names of random UTF-8, into a catalog of
// 2 000 classroom entries while another goroutine searches in a loop, and
// reports how long the registration took and how long the searches waited.
// Run it with -benchtime 1x: one registration takes tens of seconds.
func BenchmarkRegisterHostile(b *testing.B) {
	files := hostileFiles(1, 10000, 1024)
	queries := benchQueries()
	ctx := context.Background()
	var took time.Duration
	var lat []time.Duration
	for b.Loop() {
		c := New(time.Hour)
		for i := range 20 {
			srv, fs := benchServerFiles(i)
			if err := c.Register(ctx, srv, fs); err != nil {
				b.Fatal(err)
			}
		}
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				start := time.Now()
				if _, err := c.Search(ctx, queries[i%len(queries)], 100); err != nil {
					b.Error(err)
					return
				}
				lat = append(lat, time.Since(start))
			}
		}()
		start := time.Now()
		err := c.Register(ctx, store.Server{Addr: "10.66.6.6:5000"}, files)
		took += time.Since(start)
		close(done)
		wg.Wait()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(took.Seconds()/float64(b.N), "register-s")
	b.ReportMetric(float64(len(lat))/float64(b.N), "searches/op")
	if len(lat) > 0 {
		percentiles(b, lat)
	}
}
