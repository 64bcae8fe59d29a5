package master

import (
	"fmt"
	"testing"
	"time"

	"github.com/fxshell/fxsh/store/catalogtest"
)

// TestSeeds: partial sources register with SEED on any connection, update
// it, are listed to the others by SOURCES (never to themselves, newest
// first), and go with UNSEED or their connection; a SEED for another IP,
// a bad have list and more than MaxSeedsPerConn hashes are refused.
func TestSeeds(t *testing.T) {
	_, addr := startMaster(t, Config{})
	h := catalogtest.Hash("big")
	size := fmt.Sprint(10 << 20) // 160 groups
	a := hello(t, addr, "client")
	b := hello(t, addr, "client")
	c := hello(t, addr, "client")

	c.send("SOURCES hash=" + h)
	c.expect("NOT FOUND")
	a.send("SEED hash=" + h + " size=" + size + " addr=:4000 have=0-9")
	a.expect("OK hash=" + h + " addr=127.0.0.1:4000")
	b.send("SEED hash=" + h + " size=" + size + " addr=127.0.0.1:5000 have=all")
	b.expect("OK hash=" + h + " addr=127.0.0.1:5000")
	c.send("SOURCES hash=" + h)
	c.expect("FOUND n=2", "S addr=127.0.0.1:5000 have=all", "S addr=127.0.0.1:4000 have=0-9", "END")
	a.send("SOURCES hash=" + h)
	a.expect("FOUND n=1", "S addr=127.0.0.1:5000 have=all", "END")

	// An update replaces the entry; UNSEED and a closed connection end it.
	a.send("SEED hash=" + h + " size=" + size + " addr=:4000 have=0-19,30")
	a.expect("OK *")
	c.send("SOURCES hash=" + h)
	c.expect("FOUND n=2", "S addr=127.0.0.1:5000 have=all", "S addr=127.0.0.1:4000 have=0-19,30", "END")
	b.send("UNSEED hash=" + h)
	b.expect("OK hash=" + h)
	a.nc.Close()
	for i := 0; ; i++ {
		c.send("SOURCES hash=" + h)
		if l, _ := c.readLine(); l == "NOT FOUND" {
			break
		} else if i > 200 {
			t.Fatalf("a closed connection's seed is still listed: %q", l)
		}
		for l, _ := c.readLine(); l != "END"; l, _ = c.readLine() {
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Refusals.
	c.send("SEED hash="+h+" size="+size+" addr=10.9.9.9:4000 have=all",
		"SEED hash="+h+" size="+size+" addr=:4000 have=0-160",
		"SEED hash="+h+" size="+size+" addr=:4000 have=5,3",
		"SEED hash=blake3:zz size=1 addr=:4000 have=all",
		"SEED hash="+h+" addr=:4000 have=all")
	c.expect(`ERR 403 SEED: addr 10.9.9.9:4000 is not this connection's address (127.0.0.1)`,
		`ERR 400 SEED: bad have list: "0-160" (a file of 160 groups)`,
		`ERR 400 SEED: bad have list: "3" is not above the range before it`,
		`ERR 400 SEED: bad hash "blake3:zz"`,
		`ERR 400 SEED needs size=BYTES`)
	for i := range MaxSeedsPerConn {
		c.send(fmt.Sprintf("SEED hash=%s size=1 addr=:4000 have=all", catalogtest.Hash(fmt.Sprint(i))))
		c.expect("OK *")
	}
	c.send("SEED hash=" + h + " size=" + size + " addr=:4000 have=all")
	c.expect(fmt.Sprintf("ERR 403 SEED: %d files offered already on this connection", MaxSeedsPerConn))
}
