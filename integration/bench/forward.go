//go:build linux

package main

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The forwarder moves IP packets between two packet file descriptors (two
// TUN devices in the benchmark; socket pairs in the tests), one goroutine
// per direction, each on its own OS thread. Every packet is held for the
// direction's fixed one-way delay; on a lossy direction a seeded random
// fraction is dropped first. A direction may bound the packets it holds
// (Limit, like netem's `limit`, 1000 by default there): a packet arriving
// when that many wait in the delay line is tail-dropped and counted as an
// overflow, so the path has a router's finite buffer (its rate is about
// limit × packet size / delay) instead of an unbounded queue.
//
// The delay queue is a ring of preallocated slots: with one delay for every
// packet of a direction, release times rise in arrival order, so a FIFO is
// an exact timer queue (no heap, no timer or goroutine per packet). A loop
// writes out every packet that is due, reads a burst of packets (until the
// device has none, at most MaxBurst), and only when there is nothing to read
// sleeps in ppoll until the next packet is due or one arrives. Reads and
// writes are raw syscalls on non-blocking descriptors, with no allocation
// per packet.
const (
	// RingSlots caps the packets held per direction: at 500 000 packets a
	// second and 10 ms of delay, 5 000 are in flight. A packet arriving to
	// a full ring is dropped and counted as an overflow, never as loss.
	RingSlots = 16384
	// SlotSize is the largest packet the forwarder carries; the TUN
	// devices have an MTU of 1500.
	SlotSize = 2048
	// MaxBurst caps the packets read in a row before due packets are
	// written again, so a flood cannot starve the writes and add delay.
	MaxBurst = 256
	// idleWait bounds a ppoll, so a stop request is seen promptly.
	idleWait = 50 * time.Millisecond
)

// DirStats counts what one direction did.
type DirStats struct {
	Packets   uint64 `json:"packets"`    // forwarded
	Bytes     uint64 `json:"bytes"`      // forwarded
	Dropped   uint64 `json:"dropped"`    // by the random loss
	Overflow  uint64 `json:"overflow"`   // tail-dropped: the limit (or the ring) was full
	WriteErrs uint64 `json:"write_errs"` // rejected by the output device
	UDPBytes  uint64 `json:"udp_bytes"`  // forwarded IPv4 UDP packets' bytes (the sharing case tells flows apart by them)
	TCPBytes  uint64 `json:"tcp_bytes"`  // forwarded IPv4 TCP packets' bytes
}

func (s DirStats) sub(o DirStats) DirStats {
	return DirStats{s.Packets - o.Packets, s.Bytes - o.Bytes, s.Dropped - o.Dropped, s.Overflow - o.Overflow, s.WriteErrs - o.WriteErrs,
		s.UDPBytes - o.UDPBytes, s.TCPBytes - o.TCPBytes}
}

// direction forwards from in to out.
type direction struct {
	in, out int
	delayNs atomic.Int64
	loss    atomic.Uint64 // math.Float64bits of the drop probability
	limit   atomic.Int64  // packets held at most (1..RingSlots); RingSlots: unbounded

	// Owned by the loop goroutine.
	rng        *rand.Rand
	buf        []byte  // RingSlots × SlotSize
	lens       []int32 // packet length per slot
	due        []int64 // release time per slot, ns since base
	head, size int
	scratch    []byte // where a packet goes when the ring is full

	packets, bytes, dropped, overflow, writeErrs, udpBytes, tcpBytes atomic.Uint64
}

func newDirection(in, out int, delay time.Duration, seed uint64) *direction {
	d := &direction{in: in, out: out,
		rng:  rand.New(rand.NewPCG(seed, 0x6678736862656e63)),
		buf:  make([]byte, RingSlots*SlotSize), // untouched pages cost no memory
		lens: make([]int32, RingSlots), due: make([]int64, RingSlots),
		scratch: make([]byte, SlotSize)}
	d.delayNs.Store(int64(delay))
	d.limit.Store(RingSlots)
	return d
}

func (d *direction) setLoss(p float64) { d.loss.Store(math.Float64bits(p)) }

// setLimit bounds the packets the direction holds; n <= 0 (or above
// RingSlots) means only the ring bounds it.
func (d *direction) setLimit(n int) {
	if n <= 0 || n > RingSlots {
		n = RingSlots
	}
	d.limit.Store(int64(n))
}

func (d *direction) stats() DirStats {
	return DirStats{d.packets.Load(), d.bytes.Load(), d.dropped.Load(), d.overflow.Load(), d.writeErrs.Load(),
		d.udpBytes.Load(), d.tcpBytes.Load()}
}

func (d *direction) slot(i int) []byte { return d.buf[i*SlotSize : (i+1)*SlotSize] }

// readBurst reads packets until none is waiting or MaxBurst; it returns how
// many it read. Each packet's release time counts from its own read.
func (d *direction) readBurst(base time.Time) (int, error) {
	loss := math.Float64frombits(d.loss.Load())
	delay := d.delayNs.Load()
	limit := int(d.limit.Load())
	n := 0
	for n < MaxBurst {
		full := d.size >= limit
		dst := d.scratch
		if !full {
			dst = d.slot((d.head + d.size) % RingSlots)
		}
		m, err := unix.Read(d.in, dst)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("reading packet: %w", err)
		}
		if m == 0 { // a closed socket pair in tests; TUN never reads 0
			return n, errPeerClosed
		}
		n++
		switch {
		case full:
			d.overflow.Add(1)
		case loss > 0 && d.rng.Float64() < loss:
			d.dropped.Add(1)
		default:
			t := (d.head + d.size) % RingSlots
			d.lens[t], d.due[t] = int32(m), time.Since(base).Nanoseconds()+delay
			d.size++
		}
	}
	return n, nil
}

var errPeerClosed = errors.New("packet source closed")

// flush writes every due packet. It reports whether the output would block.
func (d *direction) flush(now int64) (blocked bool) {
	for d.size > 0 && d.due[d.head] <= now {
		p := d.slot(d.head)[:d.lens[d.head]]
		_, err := unix.Write(d.out, p)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return true
		}
		if err != nil {
			d.writeErrs.Add(1) // e.g. a packet the device refuses: drop it
		} else {
			d.packets.Add(1)
			d.bytes.Add(uint64(len(p)))
			if len(p) >= 20 && p[0]>>4 == 4 {
				switch p[9] { // IPv4 protocol
				case unix.IPPROTO_UDP:
					d.udpBytes.Add(uint64(len(p)))
				case unix.IPPROTO_TCP:
					d.tcpBytes.Add(uint64(len(p)))
				}
			}
		}
		d.head = (d.head + 1) % RingSlots
		d.size--
	}
	return false
}

// run forwards until stop is set or a read fails.
func (d *direction) run(base time.Time, stop *atomic.Bool) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	fds := []unix.PollFd{{Fd: int32(d.in), Events: unix.POLLIN}, {Fd: int32(d.out)}}
	for !stop.Load() {
		blocked := d.flush(time.Since(base).Nanoseconds())
		n, err := d.readBurst(base)
		if err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		wait := int64(idleWait)
		if d.size > 0 && !blocked {
			wait = min(wait, d.due[d.head]-time.Since(base).Nanoseconds())
		}
		if wait <= 0 {
			continue
		}
		fds[0].Revents, fds[1].Revents = 0, 0
		fds[1].Events = 0
		if blocked {
			fds[1].Events = unix.POLLOUT
		}
		ts := unix.NsecToTimespec(wait)
		if _, err := unix.Ppoll(fds, &ts, nil); err != nil && err != unix.EINTR {
			return fmt.Errorf("polling: %w", err)
		}
	}
	return nil
}

// forwarder joins two packet descriptors: dirs[0] carries a→b (the data
// direction, where loss applies), dirs[1] carries b→a.
type forwarder struct {
	dirs [2]*direction
	stop atomic.Bool
	wg   sync.WaitGroup
	errs [2]error
}

// newForwarder sets a and b non-blocking and returns a stopped forwarder
// with the given one-way delay on both directions and no loss.
func newForwarder(a, b int, delay time.Duration, seed uint64) (*forwarder, error) {
	for _, fd := range []int{a, b} {
		if err := unix.SetNonblock(fd, true); err != nil {
			return nil, fmt.Errorf("setting non-blocking: %w", err)
		}
	}
	return &forwarder{dirs: [2]*direction{newDirection(a, b, delay, seed), newDirection(b, a, delay, seed+1)}}, nil
}

func (f *forwarder) start() {
	base := time.Now()
	for i, d := range f.dirs {
		f.wg.Go(func() { f.errs[i] = d.run(base, &f.stop) })
	}
}

// close stops both directions and returns the first error they met.
func (f *forwarder) close() error {
	f.stop.Store(true)
	f.wg.Wait()
	return errors.Join(f.errs[0], f.errs[1])
}

// setLoss sets the drop probability on the data direction (a→b) only.
func (f *forwarder) setLoss(p float64) { f.dirs[0].setLoss(p) }

// setLimit bounds the packets each direction holds (0: unbounded).
func (f *forwarder) setLimit(n int) {
	for _, dir := range f.dirs {
		dir.setLimit(n)
	}
}

// setDelay sets the one-way delay of both directions.
func (f *forwarder) setDelay(d time.Duration) {
	for _, dir := range f.dirs {
		dir.delayNs.Store(int64(d))
	}
}

func (f *forwarder) stats() [2]DirStats { return [2]DirStats{f.dirs[0].stats(), f.dirs[1].stats()} }
