package transfer

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// MaxImpairDelay caps Impair's delay: datagrams held longer than this would
// only pile up in timers.
const MaxImpairDelay = 10 * time.Second

// ImpairSettings say how to degrade datagrams. Probabilities are per
// datagram, from 0 to 1.
type ImpairSettings struct {
	Loss    float64       // drop
	Dup     float64       // deliver twice
	Reorder float64       // hold back by an extra random delay, so later datagrams overtake it
	Corrupt float64       // flip one random bit (the CRC catches it)
	Delay   time.Duration // added to every datagram
	Rate    int64         // bytes per second this process may send; 0 means no cap
}

// Validate checks the ranges.
func (s ImpairSettings) Validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"loss", s.Loss}, {"dup", s.Dup}, {"reorder", s.Reorder}, {"corrupt", s.Corrupt}} {
		if !(p.v >= 0 && p.v <= 1) {
			return fmt.Errorf("impair: %s %v outside [0, 1]", p.name, p.v)
		}
	}
	if s.Delay < 0 || s.Delay > MaxImpairDelay {
		return fmt.Errorf("impair: delay %v outside [0, %v]", s.Delay, MaxImpairDelay)
	}
	if s.Rate < 0 {
		return fmt.Errorf("impair: negative rate %d", s.Rate)
	}
	return nil
}

func (s *ImpairSettings) active() bool {
	return s.Loss > 0 || s.Dup > 0 || s.Reorder > 0 || s.Corrupt > 0 || s.Delay > 0
}

// Impair degrades the datagrams of every Server and Fetch that holds it,
// both ways. Hold one per process by pointer and change it at any time from
// any goroutine; a nil *Impair does nothing.
type Impair struct {
	cur atomic.Pointer[ImpairSettings]

	mu     sync.Mutex // guards the rate bucket
	tokens float64    // bytes that may be sent now; negative: debt
	last   time.Time
}

// Set replaces the settings.
func (im *Impair) Set(s ImpairSettings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	im.cur.Store(&s)
	return nil
}

// Settings returns the current settings.
func (im *Impair) Settings() ImpairSettings {
	if im == nil {
		return ImpairSettings{}
	}
	if s := im.cur.Load(); s != nil {
		return *s
	}
	return ImpairSettings{}
}

// idle reports whether im does nothing now (nil, never set, or set to
// zero), so datagrams may go in batches.
func (im *Impair) idle() bool {
	s := im.load()
	return s == nil || (!s.active() && s.Rate == 0)
}

func (im *Impair) load() *ImpairSettings {
	if im == nil {
		return nil
	}
	return im.cur.Load()
}

// rateBurst is how long a sender may run ahead of the rate cap.
const rateBurst = 2 * time.Millisecond

// take charges n bytes to the rate bucket and returns how long the caller
// should wait before sending (0 if it may go now).
func (im *Impair) take(rate int64, n int) time.Duration {
	im.mu.Lock()
	defer im.mu.Unlock()
	now := time.Now()
	burst := max(float64(rate)*rateBurst.Seconds(), 2*float64(n))
	if im.last.IsZero() {
		im.tokens = burst
	} else {
		im.tokens = min(burst, im.tokens+float64(rate)*now.Sub(im.last).Seconds())
	}
	im.last = now
	im.tokens -= float64(n)
	if im.tokens >= 0 {
		return 0
	}
	return time.Duration(-im.tokens / float64(rate) * float64(time.Second))
}

// extraDelay is the delay for one datagram under s.
func (s *ImpairSettings) extraDelay() time.Duration {
	d := s.Delay
	if s.Reorder > 0 && rand.Float64() < s.Reorder {
		d += time.Duration(1 + rand.Int64N(int64(max(s.Delay, 2*time.Millisecond))))
	}
	return d
}

func corrupt(b []byte) {
	if len(b) > 0 {
		b[rand.IntN(len(b))] ^= 1 << rand.IntN(8)
	}
}

func randFloat() float64 { return rand.Float64() }
