// Package chunk is the wire format of fxsh's UDP chunk protocol (see
// netproto/PROTOCOL.md, section 2). One datagram is one packet: a fixed 32-byte
// Header followed by a kind-specific payload.
//
// Header is the common part (magic, version, kind, flags, payload length,
// transfer id, chunk index, packet number, CRC32C). AppendHeader, Finish and
// AppendPacket build a packet; ParsePacket checks one and splits it into a
// Header and a payload. Request, Retry, Ack, Done and Error are the payloads
// of the control kinds, each with an AppendX/ParseX pair that are mirror
// images; DATA carries the chunk's bytes as they are. ChunkBitmap is a set of
// chunk indexes: the receiver's record of what arrived, and the source of an
// Ack's bitmap. Cipher seals and opens packets with ChaCha20-Poly1305 under a
// per-transfer key derived from a shared key (FlagSealed).
//
// Parsing never panics, never allocates in proportion to a length the peer
// claims, and rejects anything past the named limits. An AppendX function
// encodes its value faithfully; for a value whose Validate method fails it
// produces bytes that ParseX rejects.
package chunk

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// Wire constants.
const (
	Magic     uint16 = 0x6678 // "fx": first two bytes of every packet
	Version   uint8  = 1      // the only version this package speaks
	HeaderLen        = 32     // bytes before the payload

	// MaxPayload is the largest payload the 16-bit length field can describe.
	MaxPayload = 1<<16 - 1

	// MinChunkSize and MaxChunkSize bound the chunk size a REQUEST may ask
	// for. The minimum keeps per-datagram overhead (header, syscall) under
	// 3 %; 1200-byte chunks plus header and AEAD tag still fit the 1280-byte
	// IPv6 minimum MTU. The maximum keeps a sealed DATA packet inside one
	// IPv4 UDP datagram (65 507 bytes of payload), for loopback and
	// jumbo-capable paths.
	MinChunkSize     = 1024
	DefaultChunkSize = 1200      // safe on any path with a 1280-byte MTU
	MaxChunkSize     = 63 * 1024 // 64 512 bytes
	MaxDatagram      = HeaderLen + MaxChunkSize + TagLen
	MaxChunks        = 1<<32 - 1 // chunk indexes are 32 bits
	MaxFileSize      = 1 << 50   // 1 PiB: keeps Size*... arithmetic far from overflow

	// MaxAckBits caps the bitmap one ACK carries. Why: 8192 bits are 1 KiB,
	// so an ACK (32 + 25 + 1024 bytes, +16 sealed) still fits a 1280-byte
	// datagram and is never fragmented; and it bounds the work one ACK can
	// make a sender do (a DoS defence against a peer that sends bitmaps
	// claiming huge ranges). A sender therefore never has a chunk in flight
	// more than MaxAckBits past the receiver's in-order point, so one ACK can
	// always describe everything in flight.
	MaxAckBits = 8192

	// MaxWindow is the largest receive window (chunks in flight) a receiver
	// may advertise: more could not be acknowledged by one ACK.
	MaxWindow = MaxAckBits

	// MaxRequestRanges caps the chunk ranges one REQUEST names (8 bytes
	// each): a server stores them for the life of the transfer, so the cap
	// bounds its memory per transfer; a receiver with a more fragmented
	// wish list sends the rest in later REQUESTs.
	MaxRequestRanges = 128

	// MaxCookieLen caps the address-validation cookie a REQUEST echoes.
	MaxCookieLen = 64

	// MaxErrorText caps the human-readable text of an ERROR.
	MaxErrorText = 200
)

// Kind is the type of a packet.
type Kind uint8

// Packet kinds.
const (
	KindRequest Kind = 1 // client → server: which file, chunk size, window, wanted chunks, cookie
	KindRetry   Kind = 2 // server → client: echo this cookie (address validation)
	KindData    Kind = 3 // server → client: one chunk
	KindAck     Kind = 4 // client → server: what arrived
	KindDone    Kind = 5 // either way: this transfer is over
	KindError   Kind = 6 // either way: the peer said no
)

func (k Kind) String() string {
	switch k {
	case KindRequest:
		return "REQUEST"
	case KindRetry:
		return "RETRY"
	case KindData:
		return "DATA"
	case KindAck:
		return "ACK"
	case KindDone:
		return "DONE"
	case KindError:
		return "ERROR"
	}
	return "KIND(" + itoa(uint64(k)) + ")"
}

// Flags are per-packet bits. Receivers ignore bits they do not know;
// senders set them to zero.
type Flags uint8

// Packet flags.
const (
	FlagSealed     Flags = 1 << 0 // payload is ChaCha20-Poly1305 ciphertext + 16-byte tag
	FlagRetransmit Flags = 1 << 1 // DATA: this chunk was sent before
	FlagAckNow     Flags = 1 << 2 // DATA: please acknowledge at once (probe, last before a pause)
	// FlagTree (REQUEST): the object wanted is not the file but its tree
	// (store/tree: the CVs of its 64 KiB groups, tree.Bytes(size) bytes),
	// named by the file's content hash; the REQUEST's size is the tree's.
	FlagTree Flags = 1 << 3
	// FlagAckDelay (DATA): the sender honours the ACK delay its client
	// announced in the REQUEST (Request.AckDelay) and allows for it in its
	// probe timeout, so the client may hold ACKs back that long. A sender
	// that does not know the field never sets it, and its client keeps to
	// the default (2 ms).
	FlagAckDelay Flags = 1 << 4
)

// Header is the fixed part of every packet.
//
//	offset size field
//	0      2    magic 0x66 0x78 ("fx")
//	2      1    version (1)
//	3      1    kind
//	4      1    flags
//	5      1    reserved, 0
//	6      2    payload length
//	8      8    transfer id (chosen by the client, random, nonzero)
//	16     4    chunk index (DATA; 0 otherwise)
//	20     8    packet number (per sender and transfer; the AEAD nonce)
//	28     4    CRC32C (Castagnoli) of bytes 0..27 and the payload; 0 when
//	            sealed (the AEAD tag authenticates the packet instead)
//
// All integers are big-endian.
type Header struct {
	Kind     Kind
	Flags    Flags
	Length   uint16 // payload bytes; set by Finish
	Transfer uint64
	Chunk    uint32
	Number   uint64
}

const crcOffset = 28

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors ParsePacket returns. They are sentinel values, never wrapped, so
// that a flood of garbage costs no allocation.
var (
	ErrShort    = errors.New("chunk: packet too short")
	ErrMagic    = errors.New("chunk: bad magic")
	ErrVersion  = errors.New("chunk: unsupported version")
	ErrKind     = errors.New("chunk: unknown kind")
	ErrLength   = errors.New("chunk: length field disagrees with packet")
	ErrChecksum = errors.New("chunk: CRC32C mismatch")
	ErrTransfer = errors.New("chunk: zero transfer id")
)

// AppendHeader appends h with a zero length and checksum. Append the payload
// after it, then call Finish.
func AppendHeader(b []byte, h Header) []byte {
	b = binary.BigEndian.AppendUint16(b, Magic)
	b = append(b, Version, byte(h.Kind), byte(h.Flags), 0)
	b = binary.BigEndian.AppendUint16(b, h.Length)
	b = binary.BigEndian.AppendUint64(b, h.Transfer)
	b = binary.BigEndian.AppendUint32(b, h.Chunk)
	b = binary.BigEndian.AppendUint64(b, h.Number)
	return binary.BigEndian.AppendUint32(b, 0)
}

// Finish completes the packet that starts at b[start] (a header from
// AppendHeader followed by the plaintext payload): with a non-nil c it seals
// the payload and sets FlagSealed, and the CRC field stays 0 (the AEAD tag
// already authenticates the header and the payload, so a CRC would only
// cost a second pass over every byte); otherwise it sets the length and the
// CRC. It returns the extended b (sealing appends the 16-byte tag). A
// payload longer than MaxPayload yields a packet ParsePacket rejects.
func Finish(b []byte, start int, c *Cipher) []byte {
	if start < 0 || len(b)-start < HeaderLen {
		return b
	}
	if c != nil {
		b[start+4] |= byte(FlagSealed)
		n := len(b) - start - HeaderLen + TagLen
		binary.BigEndian.PutUint16(b[start+6:], clampLen(n))
		binary.BigEndian.PutUint32(b[start+crcOffset:], 0)
		return c.seal(b, start)
	}
	pkt := b[start:]
	binary.BigEndian.PutUint16(pkt[6:], clampLen(len(pkt)-HeaderLen))
	crc := crc32.Update(0, castagnoli, pkt[:crcOffset])
	crc = crc32.Update(crc, castagnoli, pkt[HeaderLen:])
	binary.BigEndian.PutUint32(pkt[crcOffset:], crc)
	return b
}

func clampLen(n int) uint16 {
	if n > MaxPayload {
		return MaxPayload
	}
	return uint16(n)
}

// AppendPacket appends a whole packet: h, then payload, sealed when c is
// non-nil.
func AppendPacket(b []byte, h Header, payload []byte, c *Cipher) []byte {
	start := len(b)
	b = AppendHeader(b, h)
	b = append(b, payload...)
	return Finish(b, start, c)
}

// Packet is a parsed packet. Payload aliases the parsed bytes; for a sealed
// packet it is still ciphertext until Cipher.Open.
type Packet struct {
	Header
	Payload []byte
}

// ParsePacket checks the packet at the start of b (magic, version, kind,
// length, CRC) and returns it with the number of bytes it used. A sealed
// packet has no CRC (its field must be 0): it is checked only when
// Cipher.Open authenticates it, which its receiver must do before using it.
func ParsePacket(b []byte) (Packet, int, error) {
	h, err := parseHeader(b)
	if err != nil {
		return Packet{}, 0, err
	}
	n := HeaderLen + int(h.Length)
	if len(b) < n {
		return Packet{}, 0, ErrLength
	}
	if h.Flags&FlagSealed != 0 {
		if binary.BigEndian.Uint32(b[crcOffset:]) != 0 {
			return Packet{}, 0, ErrChecksum
		}
		return Packet{Header: h, Payload: b[HeaderLen:n:n]}, n, nil
	}
	crc := crc32.Update(0, castagnoli, b[:crcOffset])
	crc = crc32.Update(crc, castagnoli, b[HeaderLen:n])
	if crc != binary.BigEndian.Uint32(b[crcOffset:]) {
		return Packet{}, 0, ErrChecksum
	}
	return Packet{Header: h, Payload: b[HeaderLen:n:n]}, n, nil
}

// ParseHeader decodes the header at the start of b without checking the
// payload or the CRC (for tracing and tests; receivers use ParsePacket).
func ParseHeader(b []byte) (Header, int, error) {
	h, err := parseHeader(b)
	if err != nil {
		return Header{}, 0, err
	}
	return h, HeaderLen, nil
}

func parseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, ErrShort
	}
	if binary.BigEndian.Uint16(b) != Magic {
		return Header{}, ErrMagic
	}
	if b[2] != Version {
		return Header{}, ErrVersion
	}
	h := Header{
		Kind:     Kind(b[3]),
		Flags:    Flags(b[4]),
		Length:   binary.BigEndian.Uint16(b[6:]),
		Transfer: binary.BigEndian.Uint64(b[8:]),
		Chunk:    binary.BigEndian.Uint32(b[16:]),
		Number:   binary.BigEndian.Uint64(b[20:]),
	}
	if h.Kind < KindRequest || h.Kind > KindError {
		return Header{}, ErrKind
	}
	if h.Transfer == 0 {
		return Header{}, ErrTransfer
	}
	return h, nil
}

// itoa avoids strconv in String methods used on hot error paths.
func itoa(v uint64) string {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(buf[i:])
		}
	}
}
