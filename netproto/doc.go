// Package netproto holds fxsh's two wire protocols and the network roles
// built on them. It has no code of its own; its sub-packages are the parts:
//
//   - line: the master's text-line protocol over TCP (codec, bounded reader,
//     writer, records, limits, error codes).
//   - master: the master (index) server: Start/Running, accept loop, a
//     goroutine per connection, handshake and key check, registrations,
//     queries, liveness, the relay of push offers.
//   - masterclient: the client side of the line protocol: queries (list,
//     search, peers), push offers matched to their answers (SentOffer), and
//     the Registrar that keeps a file server or a receiver registered.
//   - chunk: the UDP datagram codec (header, kinds, ACK bitmaps, cookies,
//     AEAD sealing).
//   - transfer: the UDP transport: a Server that serves files to many
//     clients and Fetch that downloads one file from one or more sources
//     (its claim scheduler, swarm.go, a pure type), with selective
//     acknowledgement, retransmission, congestion control, pacing and
//     impairment for demos.
//   - download: one catalog entry into a resumable partial file, checked
//     and renamed.
//   - fileserver: the share role (index + registrar + UDP server).
//   - push: the push roles, Receiver and Sender.
//   - discovery: the master announced and found on the LAN (mDNS).
//   - pcap: a capture of what the process sends and receives.
//
// The specification of both protocols is in PROTOCOL.md beside this file.
package netproto
