package syserr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"
)

// TestConnRefused dials a loopback port that was just closed: the real
// error of this system must read as refused.
func TestConnRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		c.Close()
		t.Skipf("something listens at %s again", addr)
	}
	if !ConnRefused(err) {
		t.Fatalf("dialing a closed port: %v (%#v): not recognised as refused", err, err)
	}
	if !ConnRefused(fmt.Errorf("master %s: %w", addr, err)) {
		t.Error("a wrapped refusal is not recognised")
	}
	if NoSpace(err) {
		t.Error("a refusal reads as a full disk")
	}
}

func TestOthersAreNeither(t *testing.T) {
	for _, err := range []error{nil, errors.New("connection refused"), os.ErrNotExist, context.DeadlineExceeded} {
		if ConnRefused(err) || NoSpace(err) {
			t.Errorf("%v: ConnRefused=%v NoSpace=%v, want neither", err, ConnRefused(err), NoSpace(err))
		}
	}
}
