//go:build linux

package main

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// seqpacketPair returns two connected SOCK_SEQPACKET sockets: like a TUN
// device they keep packet boundaries, and they need no privileges.
func seqpacketPair(t *testing.T) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

// forwardRun sends n numbered packets of size bytes through a forwarder
// (a→b with the given loss and delay) and returns the numbers received in
// order, each with the time it took.
func forwardRun(t *testing.T, n, size int, delay time.Duration, loss float64) ([]uint32, []time.Duration, *forwarder) {
	t.Helper()
	srcW, srcR := seqpacketPair(t) // the test writes srcW, the forwarder reads srcR
	dstW, dstR := seqpacketPair(t) // the forwarder writes dstW, the test reads dstR
	f, err := newForwarder(srcR, dstW, delay, 42)
	if err != nil {
		t.Fatal(err)
	}
	f.setLoss(loss)
	f.start()
	defer func() {
		if err := f.close(); err != nil {
			t.Errorf("forwarder: %v", err)
		}
	}()
	sent := make([]atomic.Int64, n) // the race detector cannot see the socket ordering
	var got []uint32
	// The writer reports through werr, never through t: it may still be
	// blocked in a write when the test ends and its sockets close.
	werr := make(chan error, 1)
	go func() {
		buf := make([]byte, size)
		for i := range n {
			binary.BigEndian.PutUint32(buf, uint32(i))
			sent[i].Store(time.Now().UnixNano())
			if _, err := unix.Write(srcW, buf); err != nil {
				werr <- err
				return
			}
		}
	}()
	defer func() {
		select {
		case err := <-werr:
			if len(got) < n {
				t.Errorf("write: %v", err)
			}
		default:
		}
	}()
	var lat []time.Duration
	buf := make([]byte, SlotSize)
	tv := unix.NsecToTimeval(int64(2*delay + 500*time.Millisecond))
	if err := unix.SetsockoptTimeval(dstR, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	quiet := time.Now().Add(30 * time.Second) // a bound, whatever happens
	for {
		m, err := unix.Read(dstR, buf)
		if err != nil { // the timeout: nothing more is coming, unless
			// the forwarder has decided on fewer than n packets so far
			// or forwarded more than were read (a loaded machine
			// paused it or us past the timeout)
			st := f.stats()[0]
			if (int(st.Packets+st.Dropped) < n || int(st.Packets) > len(got)) && time.Now().Before(quiet) {
				continue
			}
			break
		}
		if m != size {
			t.Fatalf("packet of %d bytes, want %d", m, size)
		}
		i := binary.BigEndian.Uint32(buf)
		got = append(got, i)
		lat = append(lat, time.Duration(time.Now().UnixNano()-sent[i].Load()))
		if len(got) == n {
			break
		}
	}
	return got, lat, f
}

func TestForwarderDelayAndOrder(t *testing.T) {
	const n, delay = 500, 20 * time.Millisecond
	got, lat, f := forwardRun(t, n, 1400, delay, 0)
	if len(got) != n {
		t.Fatalf("received %d of %d packets", len(got), n)
	}
	for i, g := range got {
		if g != uint32(i) {
			t.Fatalf("packet %d arrived as number %d: order changed", i, g)
		}
		if lat[i] < delay {
			t.Fatalf("packet %d took %v, less than the %v delay", i, lat[i], delay)
		}
	}
	st := f.stats()
	if st[0].Packets != n || st[0].Bytes != n*1400 || st[0].Dropped != 0 || st[0].Overflow != 0 {
		t.Errorf("stats %+v", st[0])
	}
}

func TestForwarderLoss(t *testing.T) {
	const n = 2000
	got, _, f := forwardRun(t, n, 100, 0, 0.25)
	st := f.stats()[0]
	if int(st.Packets) != len(got) || st.Packets+st.Dropped != n {
		t.Fatalf("forwarded %d + dropped %d, received %d; want a sum of %d", st.Packets, st.Dropped, len(got), n)
	}
	// The loss is seeded: the count is fixed, and near a quarter.
	if st.Dropped < n/5 || st.Dropped > n*3/10 {
		t.Errorf("dropped %d of %d at 25%% loss", st.Dropped, n)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("order changed at %d: %d after %d", i, got[i], got[i-1])
		}
	}
	// The same seed drops the same packets.
	// (The forwarder's own count: on a loaded machine the kernel may also
	// drop a few from a full socket buffer, which no seed decides.)
	_, _, f2 := forwardRun(t, n, 100, 0, 0.25)
	if st2 := f2.stats()[0]; st2.Dropped != st.Dropped {
		t.Errorf("second run dropped %d, first %d: the loss is not reproducible", st2.Dropped, st.Dropped)
	}
}

func TestForwarderOverflow(t *testing.T) {
	d := newDirection(-1, -1, time.Hour, 1)
	src, w := seqpacketPair(t)
	d.in = w
	if err := unix.SetNonblock(w, true); err != nil {
		t.Fatal(err)
	}
	// Fill the ring by hand, then one packet more must overflow.
	d.size = RingSlots
	if _, err := unix.Write(src, []byte("x")); err != nil {
		t.Fatal(err)
	}
	n, err := d.readBurst(time.Now())
	if err != nil || n != 1 || d.overflow.Load() != 1 || d.size != RingSlots {
		t.Fatalf("readBurst = %d, %v; overflow %d, size %d", n, err, d.overflow.Load(), d.size)
	}
}

// TestForwarderLimit: with a limit of 10 held packets and a long delay, a
// burst of 25 keeps the first 10 and tail-drops 15 as overflow; lifting the
// limit takes the next packets again.
func TestForwarderLimit(t *testing.T) {
	d := newDirection(-1, -1, time.Hour, 1)
	src, w := seqpacketPair(t)
	d.in = w
	if err := unix.SetNonblock(w, true); err != nil {
		t.Fatal(err)
	}
	d.setLimit(10)
	for i := range 25 {
		if _, err := unix.Write(src, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := d.readBurst(time.Now())
	if err != nil || n != 25 {
		t.Fatalf("readBurst = %d, %v", n, err)
	}
	if d.size != 10 || d.overflow.Load() != 15 {
		t.Fatalf("held %d, overflow %d; want 10 and 15", d.size, d.overflow.Load())
	}
	// The held ones are the first ten, in order (tail drop, not head drop).
	for i := range 10 {
		if got := d.slot((d.head + i) % RingSlots)[0]; got != byte(i) {
			t.Fatalf("slot %d holds packet %d, want %d", i, got, i)
		}
	}
	d.setLimit(0)
	if _, err := unix.Write(src, []byte{99}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.readBurst(time.Now()); err != nil || d.size != 11 || d.overflow.Load() != 15 {
		t.Fatalf("unbounded: held %d, overflow %d, err %v", d.size, d.overflow.Load(), err)
	}
}
