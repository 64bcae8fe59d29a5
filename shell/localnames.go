package shell

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/partfile"
)

// The download side's checks of local names (get, get -r, mirror): what
// this system can hold, and names that are one file where case is folded.

// refuseLocalNames fails a get whose names this system cannot hold before
// any job starts, naming each file and the way out.
func refuseLocalNames(wanted []store.Entry) error {
	var bad, badName []string
	for _, e := range wanted {
		if err := checkLocalName(e.Name); err != nil {
			bad = append(bad, err.Error())
			badName = append(badName, e.Name)
		}
	}
	switch {
	case len(bad) == 1:
		return fmt.Errorf("%s; save it under another name: get %s --as NEWNAME [-o DIR]", bad[0], quoteArg(badName[0]))
	case len(bad) > 1:
		return fmt.Errorf("%s; get each under another name: get NAME --as NEWNAME [-o DIR]", strings.Join(bad, "; "))
	}
	return nil
}

// checkLocalName checks that this system can hold a file under name inside
// a download folder (partfile.CheckName): an error is ErrUnsafeName (no
// system should write it) or ErrNotValidHere (a Windows device name, ...).
func checkLocalName(name string) error { return partfile.CheckName(name) }

// caseTwins returns the first two local names that are one file in dir
// because its file system ignores case, or "", "".
func caseTwins(dir string, local []string) (string, string) {
	byFold := map[string]string{}
	for _, n := range local {
		k := strings.ToLower(n)
		if other, ok := byFold[k]; ok && other != n && foldsCase(dir) {
			return other, n
		}
		byFold[k] = n
	}
	return "", ""
}

// foldsCase reports whether dir's file system ignores case: it creates a
// probe file and looks it up in another case. A folder that does not exist
// yet is judged by the system (Windows and macOS fold case by default).
func foldsCase(dir string) bool {
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, ".fxsh-case-probe-*")
	if err != nil {
		return runtime.GOOS == "windows" || runtime.GOOS == "darwin"
	}
	name := f.Name()
	f.Close()
	defer os.Remove(name)
	_, err = os.Stat(filepath.Join(filepath.Dir(name), strings.ToUpper(filepath.Base(name))))
	return err == nil
}
