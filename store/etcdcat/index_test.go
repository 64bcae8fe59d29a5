package etcdcat

import (
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fxshell/fxsh/store"
)

// bruteSearch is the definition that index.search must agree with.
func bruteSearch(files map[string][]store.File, words []string, max int, glob *string) []string {
	seen := map[entryKey]bool{}
	var out []store.Entry
	for _, list := range files {
		for _, f := range list {
			k := entryKey{f.Name, f.Hash}
			if seen[k] {
				continue
			}
			ok := true
			if glob != nil {
				ok, _ = path.Match(*glob, f.Name)
				ok = ok || *glob == "" || *glob == "*"
			} else {
				ok = matchesAll(strings.ToLower(f.Name), words)
			}
			if ok {
				seen[k] = true
				out = append(out, store.Entry{File: f})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Hash < out[j].Hash
	})
	if glob == nil && len(out) > max {
		out = out[:max]
	}
	keys := make([]string, len(out))
	for i, e := range out {
		keys[i] = e.Name + "#" + e.Hash
	}
	return keys
}

func entryKeys(es []store.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Name + "#" + e.Hash
	}
	return out
}

// TestIndexAgainstBruteForce drives the index with random registrations,
// replacements and removals (enough to trigger compaction), and compares
// every query with a scan of the same lists.
func TestIndexAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"photo", "Report", "été", "a", "zz", "2024", "notes", "x", "Ω"}
	randName := func() string {
		n := 1 + rng.IntN(3)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = words[rng.IntN(len(words))] + fmt.Sprint(rng.IntN(5))
		}
		return strings.Join(parts, "/") + ".txt"
	}
	x := newIndex()
	lists := map[string][]store.File{}
	queries := []string{"photo", "PHOTO report", "a", "zz", "été 2", "t/", "notes1 x", "", "missing", "Ω", "ot"}
	globs := []string{"", "*", "photo*", "*/*", "notes?.txt", "[pr]*", "a1/*.txt"}
	check := func(step int) {
		for _, q := range queries {
			w := strings.Fields(strings.ToLower(q))
			all := bruteSearch(lists, w, 1<<30, nil)
			for _, max := range []int{1, 7, 1000} {
				got := entryKeys(x.search(w, max))
				// Which max of more matches is unspecified; they must be
				// matches, sorted, and as many as allowed.
				if len(got) != min(max, len(all)) || !slices.IsSorted(got) {
					t.Fatalf("step %d: search %q max %d = %d results %q, want %d sorted", step, q, max, len(got), got, min(max, len(all)))
				}
				for _, k := range got {
					if _, found := slices.BinarySearch(all, k); !found {
						t.Fatalf("step %d: search %q returned %q, not a match", step, q, k)
					}
				}
			}
		}
		for _, g := range globs {
			es, err := x.files(g)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := entryKeys(es), bruteSearch(lists, nil, 0, &g); !slices.Equal(got, want) {
				t.Fatalf("step %d: files %q = %q, want %q", step, g, got, want)
			}
			for _, e := range es {
				if !slices.IsSorted(e.Servers) || len(e.Servers) == 0 {
					t.Fatalf("servers %q", e.Servers)
				}
			}
		}
		// Folder listings by pages of 3 give what a scan filtered by
		// the prefix gives.
		for _, prefix := range []string{"", "photo1/", "a0/", "missing/"} {
			all, _ := x.files("")
			var want, got []string
			for _, k := range entryKeys(all) {
				if strings.HasPrefix(k, prefix) {
					want = append(want, k)
				}
			}
			var cur store.Cursor
			for {
				page := x.under(prefix, cur, 3)
				if len(page) == 0 {
					break
				}
				got = append(got, entryKeys(page)...)
				last := page[len(page)-1]
				cur = store.Cursor{Name: last.Name, Hash: last.Hash}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("step %d: under %q by pages = %q, want %q", step, prefix, got, want)
			}
		}
	}
	for step := range 400 {
		addr := fmt.Sprintf("h:%d", rng.IntN(20))
		if rng.IntN(4) == 0 {
			x.drop(addr)
			delete(lists, addr)
		} else {
			files := make([]store.File, rng.IntN(30))
			for i := range files {
				name := randName()
				files[i] = store.File{Name: name, Hash: hashOf(fmt.Sprint(rng.IntN(2))), MTime: time.Unix(int64(i), 0)}
			}
			x.set(addr, files)
			lists[addr] = files
		}
		if step%20 == 0 {
			check(step)
		}
	}
	check(400)
	if x.dead > len(x.byID)/2 && x.dead >= compactMin {
		t.Errorf("dead %d of %d IDs: compaction did not run", x.dead, len(x.byID))
	}
}

func TestIndexCompacts(t *testing.T) {
	x := newIndex()
	for round := range 5 {
		files := makeFiles(fmt.Sprint("round", round, "-"), compactMin)
		x.set("h:1", files)
	}
	if x.len() != compactMin {
		t.Fatalf("len = %d", x.len())
	}
	if len(x.byID) > 3*compactMin {
		t.Errorf("byID holds %d IDs for %d entries: no compaction", len(x.byID), x.len())
	}
	if got := x.search([]string{"round4-00007"}, 10); len(got) != 1 {
		t.Errorf("search after compaction = %v", names(got))
	}
	if got := x.search([]string{"round3"}, 10); len(got) != 0 {
		t.Errorf("old round still found: %v", names(got))
	}
}

func TestIndexEntryFields(t *testing.T) {
	x := newIndex()
	f := store.File{Name: "same.bin", Size: 5, Type: "bin", MTime: time.Unix(5, 0).UTC(), Hash: hashOf("s")}
	g := f
	g.MTime = time.Unix(6, 0).UTC()
	x.set("h:2", []store.File{g})
	x.set("h:1", []store.File{f})
	got := x.search([]string{"same"}, 10)
	if len(got) != 1 || !slices.Equal(got[0].Servers, []string{"h:1", "h:2"}) || !got[0].MTime.Equal(f.MTime) {
		t.Fatalf("search = %+v; want one entry from h:1's record on h:1 and h:2", got)
	}
	x.drop("h:1")
	got = x.search(nil, 10)
	if len(got) != 1 || !slices.Equal(got[0].Servers, []string{"h:2"}) || !got[0].MTime.Equal(g.MTime) {
		t.Fatalf("after drop = %+v", got)
	}
	if _, err := x.files("a["); err == nil {
		t.Error("bad glob accepted")
	}
}
