package catalogtest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/fxshell/fxsh/store"
)

// The benchmark network of issue 3, for the catalog's benchmarks
// (store/memcat) and the master's soak and budget tests: file server i of
// a classroom holds n files whose names look like a classroom's shares,
// "maths/lecture notes-week 7 kavomi.pdf", from a fixed vocabulary; 10 000
// servers of 100 files are one million distinct entries. Everything is
// deterministic: the same i and n give the same files.

var (
	// classroomVocab is 5 000 distinct pronounceable words.
	classroomVocab = sync.OnceValue(func() []string {
		rng := rand.New(rand.NewPCG(7, 7))
		cons, vows := "bcdfghjklmnprstvz", "aeiou"
		seen := map[string]bool{}
		var out []string
		for len(out) < 5000 {
			var sb strings.Builder
			for range 2 + rng.IntN(2) {
				sb.WriteByte(cons[rng.IntN(len(cons))])
				sb.WriteByte(vows[rng.IntN(len(vows))])
			}
			if w := sb.String(); !seen[w] {
				seen[w] = true
				out = append(out, w)
			}
		}
		return out
	})
	classroomDirs = []string{"maths", "Physics", "photos/2024", "music", "src/fxsh", "docs", "Holiday Photos", "videos"}
	classroomExts = []string{"pdf", "txt", "jpg", "JPG", "mp3", "go", "mkv", "png", "docx", "tar.gz"}
)

// ClassroomVocab returns the classroom vocabulary (shared: do not modify).
func ClassroomVocab() []string { return classroomVocab() }

// Word returns a word of the classroom vocabulary, drawn with rng (for
// queries over a classroom catalog).
func Word(rng *rand.Rand) string {
	v := classroomVocab()
	return v[rng.IntN(len(v))]
}

// ClassroomServer returns file server i of the classroom network, with n
// files; its address is 10.x.y.z:5000 from i.
func ClassroomServer(i, n int) (store.Server, []store.File) {
	rng := rand.New(rand.NewPCG(uint64(i), 42))
	v := func() string { return Word(rng) }
	files := make([]store.File, n)
	for j := range files {
		name := fmt.Sprintf("%s/%s %s-%s %d.%s", classroomDirs[rng.IntN(len(classroomDirs))], v(), v(), v(),
			i*n+j, classroomExts[rng.IntN(len(classroomExts))])
		files[j] = store.File{Name: name, Size: int64(rng.IntN(1 << 30)), Type: "bin",
			MTime: time.Unix(1700000000+int64(j), 0), Hash: fmt.Sprintf("blake3:%064x", i*n+j)}
	}
	return store.Server{Addr: fmt.Sprintf("10.%d.%d.%d:5000", i>>16, i>>8&255, i&255), Role: store.RoleServer}, files
}

// ClassroomKinds is how many kinds of query ClassroomQuery writes.
const ClassroomKinds = 7

// ClassroomQuery writes a query of the given kind (0 to ClassroomKinds-1)
// as users type them: one word, two words, a word and an extension, a
// short prefix, a folder and a word, a bare extension (many hits), and a
// miss.
func ClassroomQuery(rng *rand.Rand, kind int) string {
	v := func() string { return Word(rng) }
	switch kind {
	case 0:
		return v()
	case 1:
		return v() + " " + v()
	case 2:
		return strings.ToUpper(v()) + " pdf"
	case 3:
		return v()[:2]
	case 4:
		return "photos " + v()
	case 5:
		return "jpg"
	}
	return v() + "zzq"
}
