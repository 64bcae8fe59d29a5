package shareindex

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/tree"
)

// TestTreeCache: a file of several groups gets a tree whose root is its
// content hash; the tree is cached beside the hash cache, reused after a
// restart without rehashing, and a damaged tree file makes that file be
// hashed again (never served). Files of one group have no tree.
func TestTreeCache(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(t.TempDir(), "hashes")
	big := strings.Repeat("0123456789abcdef", 5*tree.GroupSize/16+100)
	writeFiles(t, dir, map[string]string{"big.bin": big, "small.txt": "hello"})

	x1, files, _ := scan(t, Config{Paths: []string{dir}, CachePath: cache})
	var bigHash, smallHash string
	for _, f := range files {
		if f.Name == "big.bin" {
			bigHash = f.Hash
		} else {
			smallHash = f.Hash
		}
	}
	if bigHash != sum(big) {
		t.Fatalf("content hash changed: %s, want %s", bigHash, sum(big))
	}
	tr, err := x1.Tree(bigHash)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := store.ParseHash(bigHash)
	if err := tr.Verify(int64(len(big)), want); err != nil {
		t.Fatalf("the tree does not lead to the hash: %v", err)
	}
	if _, err := x1.Tree(smallHash); err == nil {
		t.Fatal("a one-group file has a tree")
	}
	tf := filepath.Join(cache+TreeDirSuffix, strings.TrimPrefix(bigHash, store.HashPrefix))
	if _, err := os.Stat(tf); err != nil {
		t.Fatalf("tree not cached: %v", err)
	}
	x1.Close()

	x2, _, _ := scan(t, Config{Paths: []string{dir}, CachePath: cache})
	if st := x2.Stats(); st.Hashed != 0 || st.CacheHits != 2 {
		t.Fatalf("after a restart: %+v, want everything from the cache", st)
	}
	if tr2, err := x2.Tree(bigHash); err != nil || tr2.Root() != want {
		t.Fatalf("cached tree: %v", err)
	}
	x2.Close()

	b, _ := os.ReadFile(tf)
	b[len(b)-5] ^= 1
	os.WriteFile(tf, b, 0o600)
	x3, _, _ := scan(t, Config{Paths: []string{dir}, CachePath: cache})
	if st := x3.Stats(); st.Hashed != 1 {
		t.Fatalf("a damaged tree was used: %+v", st)
	}
	if tr3, err := x3.Tree(bigHash); err != nil || tr3.Root() != want {
		t.Fatalf("rehashed tree: %v", err)
	}
	x3.Close()
	if b2, _ := os.ReadFile(tf); string(b2) == string(b) {
		t.Fatal("the damaged tree file was not rewritten")
	}
}

func TestTreeFileCodec(t *testing.T) {
	data := []byte(strings.Repeat("x", 3*tree.GroupSize+1))
	b := tree.NewBuilder()
	b.Write(data)
	root, tr := b.Sum()
	enc := AppendTreeFile(nil, tr)
	back, err := ParseTreeFile(enc, root)
	if err != nil || back.Root() != root {
		t.Fatalf("round trip: %v", err)
	}
	for _, bad := range [][]byte{nil, enc[:10], enc[:len(enc)-1], append([]byte("fxsh-tree 2\n"), enc[12:]...)} {
		if _, err := ParseTreeFile(bad, root); err == nil {
			t.Fatalf("%q... parses", bad[:min(len(bad), 16)])
		}
	}
	if _, err := ParseTreeFile(enc, store.Sum{}); err == nil {
		t.Fatal("a tree parses for another hash")
	}
}

func FuzzParseTreeFile(f *testing.F) {
	b := tree.NewBuilder()
	b.Write(make([]byte, 2*tree.GroupSize+3))
	root, tr := b.Sum()
	f.Add(AppendTreeFile(nil, tr))
	f.Fuzz(func(t *testing.T, in []byte) {
		if tr, err := ParseTreeFile(in, root); err == nil && tr.Root() != root {
			t.Fatal("accepted a tree that does not lead to the hash")
		}
	})
}
