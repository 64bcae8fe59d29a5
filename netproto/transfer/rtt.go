package transfer

import "time"

// RTT and timer constants (RFC 6298 / RFC 9002 style).
const (
	// InitialRTT is assumed before the first sample: a LAN or a campus
	// path; the first ACK replaces it.
	InitialRTT = 100 * time.Millisecond
	// MaxAckDelay is the longest a receiver holds an ACK back unless its
	// sender allows more (SlowAckDelay); senders add it, or the delay the
	// client's REQUEST announced, to their probe timeout.
	MaxAckDelay = 2 * time.Millisecond
	// SlowAckDelay is the longest a receiver holds an ACK back from a
	// sender that honours the ACK delay announced in the REQUEST (it sets
	// chunk.FlagAckDelay on its DATA): a flow slower than ackEvery chunks
	// per MaxAckDelay (a 40 MB/s origin sends a 63 KiB chunk every 1.6 ms)
	// would otherwise cost an ACK for every chunk or two, each a datagram
	// and a wake-up of the sender. The sender adds it to its probe timeout;
	// the last chunk, a full window, probes, gaps and duplicates are still
	// acknowledged at once. 8 ms: a quarter of a campus round trip's worth
	// of queueing is not at stake, and one ACK per 5 chunks at 40 MB/s.
	SlowAckDelay = 8 * time.Millisecond
	// MaxAckEvery caps how many DATA packets a receiver takes in before it
	// acknowledges (with no gap, duplicate or ACK-NOW): every ACK is a
	// datagram each router, the sender's socket and its read loop handle,
	// so at 1200-byte chunks one per 8 cost the path a packet per 10 KB;
	// one per 32 (40 KB, ~0.5 ms at 80 MB/s) still gives the sender several
	// ACKs per round trip, and MaxAckDelay bounds the wait at low rates.
	MaxAckEvery = 32
	// RxCoalesce is how long a receiver whose last read found fewer than
	// coalesceBelow datagrams waits before reading again, when its chunks
	// are small enough (maxCoalesceChunk) that a fast transfer is tens of
	// thousands of datagrams a second: on a path without GRO (a TUN
	// device, a forwarding router, most NICs) each datagram would
	// otherwise wake the reader on its own, and a wake-up costs more than
	// handling the datagram. Go's timers round it up to about 1 ms; the
	// socket buffer (SocketBuffer) holds thousands of datagrams. The wait
	// adds up to that millisecond to some RTT samples, inside the 2 ms the
	// controller allows above its min RTT (PROTOCOL.md 2.5); the min RTT
	// comes from the datagrams read first.
	RxCoalesce       = 500 * time.Microsecond
	coalesceBelow    = 4
	maxCoalesceChunk = 16 << 10
	// minCoalesceBuffer is the smallest socket receive buffer a receiver
	// lets datagrams gather in: 2 MiB is 15 ms at 140 MB/s.
	minCoalesceBuffer = 2 << 20
	// timerGranularity floors RTTVAR's share of the timeout: Go timers and
	// schedulers are not finer than this under load.
	timerGranularity = time.Millisecond
	// MaxPTO caps the backed-off probe timeout.
	MaxPTO = 2 * time.Second
)

// rttEstimator keeps SRTT and RTTVAR from samples.
type rttEstimator struct {
	latest, smoothed, rttvar, min time.Duration
	has                           bool
}

func (r *rttEstimator) update(sample, ackDelay time.Duration) {
	if sample <= 0 {
		return
	}
	r.latest = sample
	if !r.has {
		r.has, r.min, r.smoothed, r.rttvar = true, sample, sample, sample/2
		return
	}
	r.min = min(r.min, sample)
	adj := sample
	if ackDelay > 0 && sample-ackDelay >= r.min {
		adj -= ackDelay
	}
	d := r.smoothed - adj
	if d < 0 {
		d = -d
	}
	r.rttvar = (3*r.rttvar + d) / 4
	r.smoothed = (7*r.smoothed + adj) / 8
}

func (r *rttEstimator) srtt() time.Duration {
	if !r.has {
		return InitialRTT
	}
	return r.smoothed
}

// pto is the probe timeout before backoff, for a receiver that holds ACKs
// back at most ackDelay.
func (r *rttEstimator) pto(ackDelay time.Duration) time.Duration {
	if !r.has {
		return 2 * InitialRTT
	}
	return r.smoothed + max(4*r.rttvar, timerGranularity) + ackDelay
}

// lossDelay is RFC 9002's time threshold: a chunk sent this long before
// one that was acknowledged is lost.
func (r *rttEstimator) lossDelay() time.Duration {
	return max(9*max(r.latest, r.srtt())/8, timerGranularity)
}
