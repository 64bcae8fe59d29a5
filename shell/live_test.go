package shell

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fxshell/fxsh/netproto/transfer"
)

func TestSparkline(t *testing.T) {
	if got := sparkline([]float64{0, 1, 2, 3, 4, 5, 6, 7}); got != "▁▂▃▄▅▆▇█" {
		t.Errorf("ramp %q", got)
	}
	if got := sparkline([]float64{5, 5, 5}); got != "▁▁▁" {
		t.Errorf("flat %q", got)
	}
}

func TestLiveLines(t *testing.T) {
	var h history
	for i := range 40 {
		h.add(transfer.Progress{Rate: float64(i) * 1e6, Stats: transfer.Stats{RTT: time.Duration(i+1) * time.Millisecond},
			Map: []uint8{transfer.CellHave, transfer.CellHave, transfer.CellInFlight, transfer.CellMissing}})
	}
	if len(h.rate) != SparkSamples || len(h.rtt) != SparkSamples {
		t.Fatalf("%d rate and %d rtt samples kept, want %d", len(h.rate), len(h.rtt), SparkSamples)
	}
	lines := h.lines(80)
	want := []string{"map  ██▒░", "rate ▁▁▁▁▂▂▂▃▃▃▄▄▄▄▅▅▅▆▆▆▇▇▇█ 39.0MB/s", "rtt  ▁▁▁▁▂▂▂▃▃▃▄▄▄▄▅▅▅▆▆▆▇▇▇█ 40ms"}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	for _, l := range h.lines(20) {
		if utf8.RuneCountInString(l) > 20 {
			t.Errorf("%q is wider than 20", l)
		}
	}
}
