package shell

import (
	"os"
	"path/filepath"
	"testing"
)

// tempHomeEnv is the environment that puts every per-user folder fxsh
// reads or writes into dir: the home folder (HOME; USERPROFILE on Windows;
// macOS's ~/Library/… lies under HOME), the config folder (the start-up
// file: XDG_CONFIG_HOME, %AppData%), the cache (hash cache:
// XDG_CACHE_HOME, %LocalAppData%) and the state (history: XDG_STATE_HOME).
// Tests set all of them, whatever system they run on, so that none touches
// the user's own folders (under Wine: the prefix's real AppData).
func tempHomeEnv(dir string) map[string]string {
	return map[string]string{
		"HOME":            dir,
		"USERPROFILE":     dir,
		"XDG_CONFIG_HOME": filepath.Join(dir, "config"),
		"XDG_CACHE_HOME":  filepath.Join(dir, "cache"),
		"XDG_STATE_HOME":  filepath.Join(dir, "state"),
		"APPDATA":         filepath.Join(dir, "AppData", "Roaming"),
		"LOCALAPPDATA":    filepath.Join(dir, "AppData", "Local"),
	}
}

// setTempHome points the per-user folders at a new temporary folder for
// one test (t.Setenv: restored after it) and returns that folder.
func setTempHome(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for k, v := range tempHomeEnv(dir) {
		t.Setenv(k, v)
	}
	return dir
}

// tempRCPath points the per-user folders at a temporary one (setTempHome)
// and returns where the start-up file is then, its folder made.
func tempRCPath(t *testing.T) string {
	t.Helper()
	setTempHome(t)
	path, err := rcPath()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMain keeps every test of this package off the machine's network and
// out of the user's folders: a test that starts a master on a non-loopback
// address must not announce it over mDNS, and none may read the
// developer's own start-up file or write into their cache or history.
func TestMain(m *testing.M) {
	os.Setenv("FXSH_DISCOVERY", discoveryOff)
	dir, err := os.MkdirTemp("", "fxsh-shell-test-home")
	if err != nil {
		// Without a folder of its own, a test could write into the
		// user's: do not run.
		os.Stderr.WriteString("shell tests: " + err.Error() + "\n")
		os.Exit(1)
	}
	for k, v := range tempHomeEnv(dir) {
		os.Setenv(k, v)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestTempHome: the folders fxsh uses for its files lie in the test's
// home, on this system.
func TestTempHome(t *testing.T) {
	dir := setTempHome(t)
	for name, f := range map[string]func() (string, error){"config": os.UserConfigDir, "cache": os.UserCacheDir, "home": os.UserHomeDir, "rc": rcPath} {
		p, err := f()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if rel, err := filepath.Rel(dir, p); err != nil || !filepath.IsLocal(rel) && rel != "." {
			t.Errorf("%s folder %s is not under the test's home %s", name, p, dir)
		}
	}
	if p := historyPath(); p != "" {
		if rel, err := filepath.Rel(dir, p); err != nil || !filepath.IsLocal(rel) {
			t.Errorf("history %s is not under the test's home %s", p, dir)
		}
	}
}
