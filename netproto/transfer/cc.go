package transfer

import "time"

// Congestion control: a BBR-style model (Cardwell et al., "BBR:
// Congestion-Based Congestion Control", 2016) that paces at the measured
// bottleneck bandwidth and keeps about two bandwidth-delay products in
// flight. Loss is not taken as a congestion signal by itself: a bandwidth
// sample taken while the RTT stays near its minimum is corrected for the
// fraction of chunks lost in its interval (random loss does not fill
// queues), while one taken with an inflated RTT is used as measured (loss
// with a queue is congestion). See netproto/PROTOCOL.md, section 2.
const (
	startupGain    = 2.885 // 2/ln 2: doubles the delivery rate each round
	drainGain      = 1 / startupGain
	cwndGain       = 2.0
	bwWindowRounds = 10               // the bandwidth filter's window, in round trips
	minRTTWindow   = 10 * time.Second // the min-RTT filter's window
	probeRTTTime   = 200 * time.Millisecond
	fullBwGrowth   = 1.25 // startup ends when a round grows the bandwidth less than this...
	fullBwRounds   = 3    // ...three rounds running
	// InitialWindow is the congestion window, in chunks, before the first
	// ACK. The chunk size already says what kind of path this is: 10 small
	// chunks for the internet (RFC 6928), 10 large ones on loopback.
	InitialWindow = 10
	// MinWindow is the smallest congestion window, in chunks.
	MinWindow = 4
	// MaxLossCorrection caps how much a bandwidth sample is scaled up for
	// random loss: loss above 50 % is treated as congestion whatever the RTT.
	MaxLossCorrection = 0.5
	// A round of ProbeBW overflowed the path when it lost more than twice
	// the random loss rate plus overflowLoss (BBRv2's loss threshold, 2 %),
	// counted once the random loss rate rests on lossRoundsKnown rounds:
	// twice, because a round of a few hundred chunks measures a random
	// rate of 5 % give or take 1 %.
	overflowLoss    = 0.02
	lossRoundsKnown = 4
	// lossRoundsWindow is how many counted rounds the random loss rate is
	// the minimum of.
	lossRoundsWindow = 8
	// overflowBeta is the most an overflowing round cuts the bandwidth
	// estimate to.
	overflowBeta = 0.85
	// overflowEcho is how many rounds after an overflow's cut report the
	// same overflow (PROTOCOL.md 2.5): no cut in them.
	overflowEcho = 2
	// pacingQuantum is how far, in time, a sender may burst ahead of its
	// pacing rate: Go timers cannot be relied on for shorter sleeps.
	pacingQuantum = time.Millisecond
)

var probeBwGains = [...]float64{1.25, 0.75, 1, 1, 1, 1, 1, 1}

type bbrMode uint8

const (
	modeStartup bbrMode = iota
	modeDrain
	modeProbeBW
	modeProbeRTT
)

// rateSample is what one ACK says about delivery (BBR's rs).
type rateSample struct {
	delivered      int64         // bytes delivered in the interval
	lost           int64         // bytes declared lost in the interval
	interval       time.Duration // the interval
	rtt            time.Duration // RTT of the newest acknowledged chunk
	priorDelivered int64         // delivered count when that chunk was sent
	appLimited     bool
}

// bbr is the controller of one transfer. Times are monotonic durations
// since the transfer began. Not safe for concurrent use.
type bbr struct {
	chunk int64 // bytes in one full chunk datagram

	mode                bbrMode
	bw                  [bwWindowRounds]struct{ round, v int64 }
	btlBw               int64 // bytes/s
	minRTT              time.Duration
	minRTTStamp         time.Duration
	round               int64
	nextRoundDelivered  int64
	roundStart          bool
	fullBw              int64
	fullBwCount         int
	filledPipe          bool
	cycleIdx            int
	cycleStamp          time.Duration
	probeRTTDone        time.Duration
	probeRTTRoundDone   bool
	priorCwnd           int64
	pacingGain, cwndGn  float64
	pacingRate          int64 // bytes/s
	cwnd                int64 // bytes
	lossCorrectedSample bool  // the last sample was corrected for loss (for tests)

	// The random loss rate: the lost fraction of the bytes sent in
	// rounds paced at no more than the bandwidth estimate (where a
	// bottleneck queue cannot overflow), smoothed over rounds.
	randomLoss                float64
	randomLossRounds          int                       // rounds randomLoss was measured over
	lossFracs                 [lossRoundsWindow]float64 // the last counted rounds' lost fractions
	roundLost, roundDelivered int64                     // the current round's, while it counts
	roundCounts               bool

	// Every round's totals, for the overflow check.
	allLost, allDelivered int64
	roundStartAt          time.Duration
	overflows             int   // rounds that overflowed the path (tests)
	nextCut               int64 // the first round an overflow may cut the estimate again (overflowEcho)
	probeRound            int64 // the last round that began with a pacing gain above 1
}

func newBBR(chunk int) *bbr {
	b := &bbr{
		chunk:      int64(chunk),
		pacingGain: startupGain,
		cwndGn:     startupGain,
		cwnd:       InitialWindow * int64(chunk),
	}
	// Before any RTT is known: the initial window per millisecond.
	b.pacingRate = InitialWindow * int64(chunk) * int64(time.Second/time.Millisecond)
	return b
}

func (b *bbr) bdp(gain float64) int64 {
	if b.btlBw == 0 || b.minRTT == 0 {
		return InitialWindow * b.chunk
	}
	return int64(gain * float64(b.btlBw) * b.minRTT.Seconds())
}

func (b *bbr) quantum() int64 {
	return max(2*b.chunk, int64(float64(b.pacingRate)*pacingQuantum.Seconds()))
}

// onAck updates the model. acked is the bytes newly acknowledged,
// delivered the transfer's running total, inflight the bytes still in
// flight after this ACK.
func (b *bbr) onAck(now time.Duration, rs rateSample, acked, delivered, inflight int64) {
	b.roundStart = false
	if acked > 0 && rs.priorDelivered >= b.nextRoundDelivered {
		b.nextRoundDelivered = delivered
		b.round++
		b.roundStart = true
		b.checkOverflow(now)
		b.endLossRound()
		if b.pacingGain > 1 {
			b.probeRound = b.round
		}
	}
	if b.roundCounts {
		b.roundDelivered += acked
	}
	b.allDelivered += acked
	b.updateBw(rs)
	b.checkFullPipe()
	b.updateMinRTT(now, rs.rtt, inflight)
	b.updateMode(now, inflight)
	b.setPacing()
	b.setCwnd(acked)
}

// onLoss is told about bytes declared lost: they count towards the random
// loss rate in rounds that do not probe.
func (b *bbr) onLoss(n int64) {
	if b.roundCounts {
		b.roundLost += n
	}
	b.allLost += n
}

// checkOverflow ends a round of ProbeBW: if it lost clearly more than the
// random loss rate (see overflowLoss), it overflowed the path, and the bandwidth estimate comes
// down to what the round delivered (corrected for random loss). A path that
// bounds the packets it holds rather than its rate (a router's buffer in
// front of a fast link; the bench's forwarder with its limit) passes a
// probe's first round trip at the probing rate before it drops anything,
// with no queueing delay to warn; the max filter would keep that rate for
// ten rounds, and every cruising round would overflow the path again.
func (b *bbr) checkOverflow(now time.Duration) {
	lost, delivered, dur := b.allLost, b.allDelivered, now-b.roundStartAt
	b.allLost, b.allDelivered, b.roundStartAt = 0, 0, now
	if b.mode != modeProbeBW || b.randomLossRounds < lossRoundsKnown || dur <= 0 || lost < 4*b.chunk || delivered <= 0 {
		return
	}
	if float64(lost)/float64(lost+delivered) <= 2*b.randomLoss+overflowLoss {
		return
	}
	b.overflows++
	if b.round < b.nextCut && b.round-b.probeRound > overflowEcho+1 {
		// The rounds right after a cut still carry datagrams sent at
		// the old rate (one round for them to arrive, one for their
		// loss to be seen): their overflow is the one already answered.
		// Unless this flow probed lately: then its own estimate is too
		// high and each round's cut brings it to what the path holds
		// (alone on a 200-packet path, one cut in three rounds doubled
		// the tail drops).
		return
	}
	rate := int64(float64(delivered) / dur.Seconds() / (1 - min(b.randomLoss, MaxLossCorrection)))
	if rate >= b.btlBw {
		return
	}
	b.nextCut = b.round + overflowEcho + 1
	// One round's delivery is a noisy measure (ACKs come in batches):
	// come down by at most overflowBeta a round, as BBRv2 does.
	rate = max(rate, int64(overflowBeta*float64(b.btlBw)))
	for i := range b.bw {
		b.bw[i].v = 0
	}
	slot := &b.bw[b.round%bwWindowRounds]
	slot.round, slot.v = b.round, rate
	b.btlBw = rate
}

// endLossRound folds the round that ended into the random loss rate, and
// says whether the next one counts: only rounds paced at no more than the
// estimate (ProbeBW's cruise and drain phases), so losses from a queue
// overflowed by probing or by startup are not taken for random ones.
func (b *bbr) endLossRound() {
	if b.roundCounts && b.roundDelivered+b.roundLost >= 16*b.chunk {
		// The least any of the last rounds lost: a round that overflowed
		// the path (its estimate too high, the path bounding what it holds
		// rather than its rate, so no delay gives it away) loses more
		// than random loss, a round that did not loses just that; a mean
		// would let overflow pass for random loss, correct the rate up
		// by it, and overflow more (the bench's forwarder with a limit of
		// 200 packets settled at 47 % loss that way).
		frac := float64(b.roundLost) / float64(b.roundLost+b.roundDelivered)
		b.lossFracs[b.randomLossRounds%lossRoundsWindow] = frac
		b.randomLossRounds++
		b.randomLoss = frac
		for i := range min(b.randomLossRounds, lossRoundsWindow) {
			b.randomLoss = min(b.randomLoss, b.lossFracs[i])
		}
	}
	b.roundLost, b.roundDelivered = 0, 0
	b.roundCounts = b.mode == modeProbeBW && b.pacingGain <= 1
}

func (b *bbr) updateBw(rs rateSample) {
	if rs.interval <= 0 || rs.delivered <= 0 {
		return
	}
	bw := float64(rs.delivered) / rs.interval.Seconds()
	b.lossCorrectedSample = false
	if rs.lost > 0 && b.minRTT > 0 && rs.rtt > 0 && rs.rtt <= b.minRTT*5/4+2*time.Millisecond {
		// Only as much loss as is random: what a sample lost beyond that
		// is a queue overflowing (shallow buffers overflow before the RTT
		// shows it).
		frac := min(float64(rs.lost)/float64(rs.lost+rs.delivered), b.randomLoss)
		if frac > 0 && frac <= MaxLossCorrection {
			bw /= 1 - frac
			b.lossCorrectedSample = true
		}
	}
	v := int64(bw)
	if rs.appLimited && v < b.btlBw {
		return
	}
	slot := &b.bw[b.round%bwWindowRounds]
	if slot.round != b.round {
		slot.round, slot.v = b.round, 0
	}
	slot.v = max(slot.v, v)
	var m int64
	for _, s := range b.bw {
		if s.round > b.round-bwWindowRounds {
			m = max(m, s.v)
		}
	}
	b.btlBw = m
}

func (b *bbr) checkFullPipe() {
	if b.filledPipe || !b.roundStart || b.btlBw == 0 {
		return
	}
	if float64(b.btlBw) >= float64(b.fullBw)*fullBwGrowth {
		b.fullBw, b.fullBwCount = b.btlBw, 0
		return
	}
	b.fullBwCount++
	if b.fullBwCount >= fullBwRounds {
		b.filledPipe = true
	}
}

func (b *bbr) updateMinRTT(now, rtt time.Duration, inflight int64) {
	expired := b.minRTT > 0 && now > b.minRTTStamp+minRTTWindow
	if rtt > 0 && (b.minRTT == 0 || rtt <= b.minRTT || expired) {
		b.minRTT, b.minRTTStamp = rtt, now
	}
	if expired && b.mode != modeProbeRTT {
		b.mode = modeProbeRTT
		b.pacingGain, b.cwndGn = 1, 1
		b.priorCwnd = b.cwnd
		b.probeRTTDone = 0
	}
	if b.mode == modeProbeRTT {
		if b.probeRTTDone == 0 && inflight <= MinWindow*b.chunk {
			b.probeRTTDone = now + probeRTTTime
			b.probeRTTRoundDone = false
			b.nextRoundDelivered = 0 // the next ACK starts a round
		} else if b.probeRTTDone != 0 {
			if b.roundStart {
				b.probeRTTRoundDone = true
			}
			if b.probeRTTRoundDone && now > b.probeRTTDone {
				b.minRTTStamp = now
				b.cwnd = max(b.cwnd, b.priorCwnd)
				b.enterProbeBW(now)
				if !b.filledPipe {
					b.mode, b.pacingGain, b.cwndGn = modeStartup, startupGain, startupGain
				}
			}
		}
	}
}

func (b *bbr) enterProbeBW(now time.Duration) {
	b.mode = modeProbeBW
	b.cwndGn = cwndGain
	b.cycleIdx = int(now) % len(probeBwGains) // desynchronise competing flows
	if b.cycleIdx == 1 {
		b.cycleIdx = 2 // do not start by draining
	}
	b.pacingGain = probeBwGains[b.cycleIdx]
	b.cycleStamp = now
}

func (b *bbr) updateMode(now time.Duration, inflight int64) {
	switch b.mode {
	case modeStartup:
		if b.filledPipe {
			b.mode, b.pacingGain, b.cwndGn = modeDrain, drainGain, startupGain
		}
	case modeDrain:
		if inflight <= b.bdp(1) {
			b.enterProbeBW(now)
		}
	case modeProbeBW:
		phase := max(b.minRTT, pacingQuantum)
		adv := now-b.cycleStamp > phase
		if b.pacingGain < 1 && inflight <= b.bdp(1) {
			adv = true
		}
		if adv {
			b.cycleIdx = (b.cycleIdx + 1) % len(probeBwGains)
			b.pacingGain = probeBwGains[b.cycleIdx]
			b.cycleStamp = now
		}
	}
}

func (b *bbr) setPacing() {
	if b.btlBw == 0 {
		return
	}
	rate := int64(b.pacingGain * float64(b.btlBw))
	if b.filledPipe || rate > b.pacingRate {
		b.pacingRate = max(rate, MinWindow*b.chunk) // never below MinWindow chunks a second
	}
}

func (b *bbr) setCwnd(acked int64) {
	if b.mode == modeProbeRTT {
		b.cwnd = MinWindow * b.chunk
		return
	}
	target := b.bdp(b.cwndGn) + 3*b.quantum()
	if b.filledPipe {
		b.cwnd = min(b.cwnd+acked, target)
	} else if b.cwnd < target {
		b.cwnd += acked
	}
	b.cwnd = max(b.cwnd, MinWindow*b.chunk)
}
