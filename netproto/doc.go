// Package netproto holds fxsh's two wire protocols and the network roles
// built on them. It has no code of its own; its sub-packages are the parts:
//
//   - line: the master's text-line protocol over TCP (codec, bounded reader,
//     writer, records, limits, error codes).
//   - master: the master (index) server: accept loop, a goroutine per
//     connection, handshake and key check, registrations, queries, liveness.
//   - masterclient: the client side of the line protocol: queries (list,
//     search, peers) and the Registrar that keeps a file server registered.
//   - chunk: the UDP datagram codec (header, kinds, ACK bitmaps, cookies,
//     AEAD sealing).
//   - transfer: the UDP transport: a Server that serves files to many
//     clients and Fetch that downloads one file from one or more sources,
//     with selective acknowledgement, retransmission, congestion control,
//     pacing and impairment for demos.
//   - fileserver: the share role (index + registrar + UDP server).
//
// The specification of both protocols is in PROTOCOL.md beside this file.
package netproto
