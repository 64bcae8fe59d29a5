package masterclient

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/catalogtest"
)

// fakeMaster plays a transcript on the master's end of a pipe: "C: " lines
// must arrive exactly as written, "S: " lines are sent. It reports the
// first difference on done.
func fakeMaster(t *testing.T, transcript string) (dial func(context.Context, string) (net.Conn, error), done chan error) {
	t.Helper()
	cli, srv := net.Pipe()
	t.Cleanup(func() { cli.Close(); srv.Close() })
	done = make(chan error, 1)
	go func() {
		br := bufio.NewReader(srv)
		for l := range strings.Lines(strings.TrimSpace(transcript)) {
			l = strings.TrimSpace(l)
			switch {
			case strings.HasPrefix(l, "C: "):
				srv.SetReadDeadline(time.Now().Add(10 * time.Second))
				got, err := br.ReadString('\n')
				if err != nil {
					done <- &transcriptError{want: l, got: "error " + err.Error()}
					return
				}
				if want := l[3:] + "\n"; got != want {
					done <- &transcriptError{want: want, got: got}
					return
				}
			case strings.HasPrefix(l, "S: "):
				srv.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if _, err := srv.Write([]byte(l[3:] + "\n")); err != nil {
					done <- &transcriptError{want: l, got: "error " + err.Error()}
					return
				}
			}
		}
		done <- nil
	}()
	used := false
	return func(context.Context, string) (net.Conn, error) {
		if used {
			return nil, net.ErrClosed
		}
		used = true
		return cli, nil
	}, done
}

type transcriptError struct{ want, got string }

func (e *transcriptError) Error() string {
	return "master wanted " + quote(e.want) + ", got " + quote(e.got)
}

func quote(s string) string { return strings.ReplaceAll(s, "\n", `\n`) }

const hi = "S: HI fxsh/1 hb=10 ttl=30 maxline=4096 maxname=1024 maxfiles=10000"

func TestClientTranscript(t *testing.T) {
	h := catalogtest.Hash("x")
	dial, done := fakeMaster(t, `
C: HELLO fxsh/1 role=client
`+hi+`
C: SEARCH q=holiday\sPHOTOS max=5
S: FOUND n=2 more=1
S: F name=Holiday\sPhotos/a=b.jpg size=10 type=jpg mtime=1700000000 hash=`+h+` servers=10.0.0.1:5000,10.0.0.2:5000
S: F name=holiday\sphotos/🎉.jpg size=20 type=jpg mtime=1700000001 hash=`+h+` servers=10.0.0.3:5000
S: END
C: LIST glob=*.mp3
S: NOT FOUND
C: PEERS
S: FOUND n=1
S: P addr=10.0.0.1:5000 role=receiver files=0 since=1700000000 seen=1700000005 name=bob
S: END
C: SEARCH q=x
S: ERR 503 catalog unavailable
C: BYE
S: BYE
`)
	ctx := context.Background()
	c, err := Dial(ctx, Config{Masters: []string{"m:1"}, Dial: dial})
	if err != nil {
		t.Fatal(err)
	}
	es, more, err := c.Search(ctx, "holiday PHOTOS", 5)
	if err != nil || !more || len(es) != 2 {
		t.Fatalf("Search = %+v, %v, %v", es, more, err)
	}
	if es[0].Name != "Holiday Photos/a=b.jpg" || es[0].Size != 10 || len(es[0].Servers) != 2 ||
		es[1].Name != "holiday photos/🎉.jpg" || !es[1].MTime.Equal(time.Unix(1700000001, 0)) {
		t.Errorf("entries %+v", es)
	}
	if es, more, err := c.List(ctx, "*.mp3", 0); err != nil || more || len(es) != 0 {
		t.Errorf("List = %+v, %v, %v; want empty", es, more, err)
	}
	ps, err := c.Peers(ctx)
	if err != nil || len(ps) != 1 || ps[0].Name != "bob" || ps[0].Role != store.RoleReceiver {
		t.Errorf("Peers = %+v, %v", ps, err)
	}
	// A 503 is retried once on a new connection; the fake has none, so
	// the retry fails and the first error is reported with it.
	if _, _, err := c.Search(ctx, "x", 0); err == nil || !strings.Contains(err.Error(), "503 catalog unavailable") {
		t.Errorf("Search on a down catalog = %v", err)
	}
	if err := <-done; err != nil {
		// BYE is not sent on the connection closed by the retry.
		if te, ok := err.(*transcriptError); !ok || !strings.Contains(te.want, "BYE") {
			t.Fatal(err)
		}
	}
	c.Close()
}

func TestRegistrarTranscript(t *testing.T) {
	dial, done := fakeMaster(t, `
C: HELLO fxsh/1 role=server
`+hi+`
C: REGISTER addr=:5000 n=2
C: F name=a\sb.txt size=1 type=text mtime=1700000000 hash=`+catalogtest.Hash("a")+`
C: F name=dir/c=d\se.txt size=1 type=text mtime=1700000000 hash=`+catalogtest.Hash("c")+`
C: END
S: OK addr=127.0.0.1:5000 files=2
C: REGISTER addr=:5000 n=1
C: F name=new.txt size=1 type=text mtime=1700000000 hash=`+catalogtest.Hash("n")+`
C: END
S: OK addr=127.0.0.1:5000 files=1
C: BYE
S: BYE
`)
	ctx := context.Background()
	evs := make(chan Event, 16)
	r, err := StartRegistrar(ctx, Config{Masters: []string{"m:1"}, Dial: dial, OnEvent: func(e Event) { evs <- e }},
		Registration{Addr: ":5000", Files: []store.File{catalogtest.File("a b.txt", "a"), catalogtest.File("dir/c=d e.txt", "c")}})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.WaitRegistered(wctx); err != nil {
		t.Fatal(err)
	}
	if r.Master() != "m:1" {
		t.Errorf("Master() = %q", r.Master())
	}
	if err := r.Update([]store.File{catalogtest.File("new.txt", "n")}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, evs, Registered, func(e Event) bool { return e.Files == 1 })
	if err := r.Close(wctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func waitEvent(t *testing.T, evs <-chan Event, kind EventKind, ok func(Event) bool) Event {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case e := <-evs:
			if e.Kind == kind && (ok == nil || ok(e)) {
				return e
			}
		case <-timeout:
			t.Fatalf("no %v event", kind)
		}
	}
}

func TestRegistrationChecks(t *testing.T) {
	good := catalogtest.File("a", "a")
	bad := catalogtest.File("../a", "a")
	tests := []struct {
		name string
		reg  Registration
	}{
		{"no files", Registration{Addr: ":1"}},
		{"receiver with files", Registration{Addr: ":1", Role: store.RoleReceiver, Files: []store.File{good}}},
		{"bad name", Registration{Addr: ":1", Files: []store.File{bad}}},
		{"twice", Registration{Addr: ":1", Files: []store.File{good, good}}},
		{"bad addr", Registration{Addr: "x", Files: []store.File{good}}},
		{"bad role", Registration{Addr: ":1", Role: "boss"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := StartRegistrar(context.Background(), Config{Masters: []string{"m:1"}}, tt.reg); err == nil {
				t.Error("StartRegistrar accepted it")
			}
		})
	}
	if _, err := StartRegistrar(context.Background(), Config{}, Registration{Addr: ":1", Files: []store.File{good}}); err != ErrNoMasters {
		t.Errorf("no masters: %v", err)
	}
}
