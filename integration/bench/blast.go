//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The UDP flood that measures the forwarder's ceiling: a sender that writes
// 1472-byte datagrams (1500-byte IP packets) as fast as it can for a given
// time, 44 at a time through UDP GSO where the kernel has it, and a sink
// that counts what arrives. The forwarder's own counters are the measure;
// the sink only gives the packets somewhere to go.
const (
	cmdUDPBlast = "__udp-blast"
	cmdUDPSink  = "__udp-sink"
	// BlastPayload fills a 1500-byte IP packet.
	BlastPayload = PathMTU - 20 - 8
	// MaxBlastTime caps a flood.
	MaxBlastTime = 30 * time.Second
	blastSegs    = 44 // 44 × 1472 < 64 KiB, the GSO limit
)

type blastResult struct {
	Packets uint64  `json:"packets"`
	Bytes   uint64  `json:"bytes"`
	Seconds float64 `json:"seconds"`
	GSO     bool    `json:"gso"`
}

func runUDPBlast(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(cmdUDPBlast, flag.ContinueOnError)
	fs.SetOutput(stderr)
	to := fs.String("to", "", "destination HOST:PORT")
	dur := fs.Duration("for", 2*time.Second, "how long to send")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dur <= 0 || *dur > MaxBlastTime {
		fmt.Fprintf(stderr, "udp-blast: -for: want 0..%s\n", MaxBlastTime)
		return 2
	}
	conn, err := net.Dial("udp", *to)
	if err != nil {
		fmt.Fprintln(stderr, "udp-blast:", err)
		return 1
	}
	defer conn.Close()
	uc := conn.(*net.UDPConn)
	res := blastResult{GSO: true}
	rc, err := uc.SyscallConn()
	if err == nil {
		var serr error
		rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT, BlastPayload)
		})
		res.GSO = serr == nil
	}
	buf := make([]byte, BlastPayload*blastSegs)
	if !res.GSO {
		buf = buf[:BlastPayload]
	}
	start := time.Now()
	end := start.Add(*dur)
	for i := 0; ; i++ {
		if i%16 == 0 && time.Now().After(end) {
			break
		}
		n, err := uc.Write(buf)
		if err != nil {
			// A full device queue or an ICMP error: keep flooding.
			if errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EAGAIN) {
				continue
			}
			fmt.Fprintln(stderr, "udp-blast:", err)
			return 1
		}
		res.Bytes += uint64(n)
		res.Packets += uint64((n + BlastPayload - 1) / BlastPayload)
	}
	res.Seconds = time.Since(start).Seconds()
	json.NewEncoder(stdout).Encode(res)
	return 0
}

func runUDPSink(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(cmdUDPSink, flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "", "HOST:PORT to receive on")
	dur := fs.Duration("for", 3*time.Second, "how long to receive")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dur <= 0 || *dur > MaxBlastTime+10*time.Second {
		fmt.Fprintln(stderr, "udp-sink: -for out of range")
		return 2
	}
	conn, err := net.ListenPacket("udp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "udp-sink:", err)
		return 1
	}
	defer conn.Close()
	conn.(*net.UDPConn).SetReadBuffer(4 << 20)
	fmt.Fprintf(stdout, "listening %s\n", conn.LocalAddr())
	os.Stdout.Sync()
	start := time.Now()
	conn.SetReadDeadline(start.Add(*dur))
	var res blastResult
	buf := make([]byte, 65536)
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			break
		}
		res.Packets++
		res.Bytes += uint64(n)
	}
	res.Seconds = time.Since(start).Seconds()
	json.NewEncoder(stdout).Encode(res)
	return 0
}
