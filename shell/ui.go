package shell

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/chzyer/readline"
	"golang.org/x/term"
)

// UI is the terminal as the shell sees it. The interactive implementation
// wraps chzyer/readline; scripts and pipes use a plain line reader; tests use
// a fake that replays lines and records output.
type UI interface {
	// ReadLine returns the next input line without its newline, io.EOF at
	// the end of input, or ErrInterrupt when the user pressed Ctrl-C (with
	// what had been typed on the line, which is dropped).
	ReadLine() (string, error)
	// Print writes text to standard output. It is safe to call from any
	// goroutine; on a terminal it does not corrupt the line being typed.
	Print(s string)
	// PrintErr writes text to standard error, like Print.
	PrintErr(s string)
	// IsTerminal reports whether this is an interactive terminal.
	IsTerminal() bool
	// Width returns the width of standard output in cells, read now (so a
	// resized window counts at once), or 0 if it is not a terminal: no
	// limit, lines keep every field.
	Width() int
	// SetPrompt changes the prompt; it is redrawn if a line is being read.
	SetPrompt(p string)
	// SaveHistory records a line that parsed.
	SaveHistory(line string)
	Close() error
}

// ErrInterrupt is returned by ReadLine when the user pressed Ctrl-C.
var ErrInterrupt = errors.New("interrupt")

// plainUI reads lines with a bounded buffered reader: no prompt, no
// history, no colour. It is what scripts and pipes get.
type plainUI struct {
	r   *bufio.Reader
	mu  sync.Mutex // serialises writes to out and errw
	out io.Writer
	err io.Writer
}

func newPlainUI(in io.Reader, out, errw io.Writer) *plainUI {
	return &plainUI{r: bufio.NewReaderSize(in, 64<<10), out: out, err: errw}
}

// Width is the terminal's width when a script's standard output is one
// (fxsh -c 'get big; wait' in a window), else 0.
func (u *plainUI) Width() int { return termWidth(u.out) }

// termWidth returns the width of w if it is a terminal, else 0.
func termWidth(w any) int {
	f, ok := w.(*os.File)
	if !ok || !isTerminal(f) {
		return 0
	}
	cols, _, err := term.GetSize(int(f.Fd()))
	if err != nil || cols <= 0 {
		return 80 // a terminal that will not say: the common size
	}
	return cols
}

func (u *plainUI) ReadLine() (string, error) {
	return readBoundedLine(u.r, MaxCommandLine)
}

// errLongLine is returned for an input line over MaxCommandLine; the rest of
// that line has been consumed, so the next ReadLine starts on the next line.
var errLongLine = fmt.Errorf("line too long (at most %d bytes)", MaxCommandLine)

// readBoundedLine reads one line of at most max bytes; a longer line is
// skipped and reported as errLongLine.
func readBoundedLine(r *bufio.Reader, max int) (string, error) {
	var buf []byte
	tooLong := false
	for {
		frag, err := r.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(frag) > max+2 { // room for CR LF
				tooLong = true
				buf = nil
			} else {
				buf = append(buf, frag...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil && (len(buf) == 0 && !tooLong || !errors.Is(err, io.EOF)) {
			return "", err
		}
		if tooLong {
			return "", errLongLine
		}
		s := string(buf)
		if n := len(s); n > 0 && s[n-1] == '\n' {
			s = s[:n-1]
		}
		if n := len(s); n > 0 && s[n-1] == '\r' {
			s = s[:n-1]
		}
		return s, nil
	}
}

func (u *plainUI) Print(s string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	io.WriteString(u.out, s)
}

func (u *plainUI) PrintErr(s string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	io.WriteString(u.err, s)
}

func (u *plainUI) IsTerminal() bool   { return false }
func (u *plainUI) SetPrompt(string)   {}
func (u *plainUI) SaveHistory(string) {}
func (u *plainUI) Close() error       { return nil }

// termUI is the interactive prompt on a real terminal.
type termUI struct {
	rl    *readline.Instance
	stdin *readline.CancelableStdin
	mu    sync.Mutex // one write per message through readline's stdout
}

// historyPath returns where the history file lives: $XDG_STATE_HOME/fxsh/history
// where that is set, else ~/.fxsh_history on Unix (where shells keep theirs)
// and %AppData%\fxsh\history on Windows (os.UserConfigDir: a user's
// profile folder is not where Windows programs keep their files).
func historyPath() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "fxsh", "history")
	}
	if runtime.GOOS == "windows" {
		if d, err := os.UserConfigDir(); err == nil {
			return filepath.Join(d, "fxsh", "history")
		}
		return ""
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".fxsh_history")
	}
	return ""
}

// prepareHistory creates the history file's folder and the file itself with
// mode 0600, so readline (which would create it 0666 minus umask) finds it.
func prepareHistory(p string) string {
	if p == "" {
		return ""
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return ""
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return ""
	}
	f.Close()
	os.Chmod(p, 0o600)
	return p
}

func newTermUI(prompt string, ac readline.AutoCompleter) (*termUI, error) {
	// readline wraps Stdin in a FillableStdin whose Close does not reach
	// the reader below, so Close would wait forever for a pending read:
	// keep our own cancelable reader and close it ourselves.
	stdin := readline.NewCancelableStdin(os.Stdin)
	rl, err := readline.NewEx(&readline.Config{
		Stdin:                  stdin,
		Prompt:                 prompt,
		HistoryFile:            prepareHistory(historyPath()),
		HistoryLimit:           1000,
		DisableAutoSaveHistory: true,
		AutoComplete:           ac,
		InterruptPrompt:        "^C",
		EOFPrompt:              "",
		HistorySearchFold:      true,
		// Ctrl-Z must not stop the process: it serves others.
		FuncFilterInputRune: func(r rune) (rune, bool) {
			if r == readline.CharCtrlZ {
				return r, false
			}
			return r, true
		},
	})
	if err != nil {
		return nil, err
	}
	return &termUI{rl: rl, stdin: stdin}, nil
}

func (u *termUI) ReadLine() (string, error) {
	line, err := u.rl.Readline()
	if errors.Is(err, readline.ErrInterrupt) {
		return line, ErrInterrupt
	}
	return line, err
}

func (u *termUI) Print(s string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	io.WriteString(u.rl.Stdout(), s)
}

func (u *termUI) PrintErr(s string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	io.WriteString(u.rl.Stderr(), s)
}

func (u *termUI) IsTerminal() bool { return true }

func (u *termUI) Width() int {
	if w := termWidth(os.Stdout); w > 0 {
		return w
	}
	return 80
}

func (u *termUI) SetPrompt(p string) {
	u.rl.SetPrompt(p)
	u.rl.Refresh()
}

func (u *termUI) SaveHistory(line string) { u.rl.SaveHistory(line) }
func (u *termUI) Close() error {
	u.stdin.Close()
	return u.rl.Close()
}
