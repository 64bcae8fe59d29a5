package shell

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestGetNames serves names that Windows cannot hold, and names that differ
// only in case, from a file server in this process, and gets them. Where the
// name is valid (Linux, macOS) the file arrives as it is; a Windows
// downloader refuses it before any job starts, naming the file and
// get NAME --as NEWNAME, which saves it. On a folder that folds case, one
// get of both case twins is refused up front; on one that does not, both
// arrive with their own bytes.
func TestGetNames(t *testing.T) {
	share := t.TempDir()
	files := map[string][]byte{
		"aux.c":    bytes.Repeat([]byte("aux "), 3000),
		"plain.md": []byte("plain\n"),
	}
	twins := !foldsCase(share)
	if twins {
		files["Report.TXT"] = bytes.Repeat([]byte("UPPER "), 20000)
		files["report.txt"] = bytes.Repeat([]byte("lower "), 15000)
	}
	// Windows cannot create aux.c: there the server shares it under the
	// name only a Linux or macOS server could, which this test cannot
	// fake, so that part runs where the name is valid.
	if runtime.GOOS == "windows" {
		delete(files, "aux.c")
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(share, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srvUI := newFakeUI(false)
	srv := testShell(t, srvUI)
	t.Cleanup(srv.closeRoles)
	if !runLines(t, srv, "serve master 127.0.0.1:0", "share "+Quote(share)+" --udp 127.0.0.1:0") {
		t.Fatalf("server: %s", srvUI.stderr())
	}
	ui := newFakeUI(false)
	cl := testShell(t, ui)
	cl.opts.Masters = srv.masters()
	dl := t.TempDir()
	waitFor(t, "the registration", func() bool {
		return runLines(t, cl, "list plain.md") && strings.Contains(ui.stdout(), "plain.md")
	})

	if _, ok := files["aux.c"]; ok {
		if !runLines(t, cl, "list aux.c") || !strings.Contains(ui.stdout(), "aux.c") {
			t.Fatalf("aux.c is not listed: %s%s", ui.stdout(), ui.stderr())
		}
		if !runLines(t, cl, "get aux.c -o "+Quote(dl), "wait") {
			t.Fatalf("get aux.c on %s: %s", runtime.GOOS, ui.stderr())
		}
		checkFile(t, filepath.Join(dl, "aux.c"), files["aux.c"])
	}

	// --as saves under another name; it names one file.
	if !runLines(t, cl, "get plain.md --as notes/plain-copy.md -o "+Quote(dl), "wait") {
		t.Fatalf("get --as: %s", ui.stderr())
	}
	checkFile(t, filepath.Join(dl, "notes", "plain-copy.md"), files["plain.md"])
	if _, err := os.Stat(filepath.Join(dl, "plain.md")); err == nil {
		t.Error("get --as also wrote the original name")
	}
	if runLines(t, cl, "get * --as x -o "+Quote(dl)) {
		t.Error("--as with several files succeeded")
	} else if !strings.Contains(ui.stderr(), "--as names one file") {
		t.Errorf("stderr = %q", ui.stderr())
	}
	if runLines(t, cl, "get plain.md --as ../out.md -o "+Quote(dl)) {
		t.Error("--as ../out.md succeeded")
	}

	if twins {
		if !runLines(t, cl, "get Report.TXT report.txt -o "+Quote(dl), "wait") {
			t.Fatalf("get Report.TXT report.txt: %s", ui.stderr())
		}
		checkFile(t, filepath.Join(dl, "Report.TXT"), files["Report.TXT"])
		checkFile(t, filepath.Join(dl, "report.txt"), files["report.txt"])
	}
}

func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, not the %d served", path, len(got), len(want))
	}
}

// TestCaseTwins: the up-front check finds names one folder cannot hold
// apart only where the folder folds case.
func TestCaseTwins(t *testing.T) {
	dir := t.TempDir()
	a, b := caseTwins(dir, []string{"x.txt", "Report.TXT", "y", "report.txt"})
	if foldsCase(dir) {
		if a != "Report.TXT" || b != "report.txt" {
			t.Errorf("caseTwins = %q, %q on a folder that folds case", a, b)
		}
	} else if a != "" || b != "" {
		t.Errorf("caseTwins = %q, %q on a folder that keeps case apart", a, b)
	}
	if a, b := caseTwins(dir, []string{"x.txt", "y.txt"}); a != "" || b != "" {
		t.Errorf("caseTwins of distinct names = %q, %q", a, b)
	}
}
