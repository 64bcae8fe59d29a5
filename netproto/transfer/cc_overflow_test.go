package transfer

import (
	"testing"
	"time"
)

// TestOverflowCutOncePerEcho: cruising rounds of ProbeBW (no probe of its
// own lately) that overflow the path one after another — another flow
// keeps the queue full — bring the bandwidth estimate down once, then not
// in the overflowEcho rounds that still carry datagrams sent at the old
// rate, then again. Rounds right after its own probe cut each time (the
// probe overflowed the path: its estimate is too high). A round within the
// loss threshold cuts nothing.
func TestOverflowCutOncePerEcho(t *testing.T) {
	const chunk = 1424
	b := newBBR(chunk)
	b.mode = modeProbeBW
	b.randomLossRounds = lossRoundsKnown
	b.btlBw = 100e6
	b.round, b.probeRound = 100, 0 // cruising since round 0
	now := time.Duration(0)
	round := func(lost, delivered int64) int64 {
		b.round++
		b.allLost, b.allDelivered = lost, delivered
		now += 10 * time.Millisecond
		b.checkOverflow(now)
		return b.btlBw
	}
	b.roundStartAt = now
	// Each round delivers 0.5 MB in 10 ms (50 MB/s) and loses 10 %.
	var got []int64
	for range 2*(overflowEcho+1) + 1 {
		got = append(got, round(50_000, 500_000))
	}
	want := []int64{85e6, 85e6, 85e6, 72_250_000, 72_250_000, 72_250_000, 61_412_500}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("estimate after each overflowing round: %v, want %v", got, want)
		}
	}
	if b.overflows != len(want) {
		t.Fatalf("%d overflowing rounds counted, want %d", b.overflows, len(want))
	}
	// Right after a probe of its own: a cut each round.
	b.probeRound = b.round
	b.btlBw = 100e6
	got = got[:0]
	for range overflowEcho + 1 {
		got = append(got, round(50_000, 500_000))
	}
	if want := []int64{85e6, 72_250_000, 61_412_500}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("estimate after each overflowing round after a probe: %v, want %v", got, want)
	}
	// Within the threshold (2 × random loss + 2 %): no cut, even when due.
	b.nextCut = 0
	if before := b.btlBw; round(5_000, 500_000) != before {
		t.Errorf("a round losing 1 %% cut the estimate from %d to %d", before, b.btlBw)
	}
}
