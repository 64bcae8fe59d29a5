package chunk

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
)

// An ownership proof is the one datagram of the chunk protocol's socket
// that is not a packet: a master that is asked to register an address
// another connection holds sends a fresh token to that address, and only
// a peer that receives datagrams there can echo it over TCP
// (REGISTER proof=TOKEN, PROTOCOL.md 1.3). Layout: the 8 bytes "FXPROVE "
// then the token, 32 lower-case hex digits (16 random bytes). It never
// starts with the packet magic, so a server tells it apart by its first
// byte.

// ProofPrefix opens an ownership-proof datagram.
const ProofPrefix = "FXPROVE "

// ProofTokenLen is the length of a token in hex digits.
const ProofTokenLen = 32

// ProofLen is the length of a proof datagram.
const ProofLen = len(ProofPrefix) + ProofTokenLen

// NewProofToken returns a fresh random token.
func NewProofToken() string {
	var b [ProofTokenLen / 2]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// AppendProof appends the proof datagram carrying token.
func AppendProof(b []byte, token string) []byte {
	return append(append(b, ProofPrefix...), token...)
}

// IsProof reports whether a datagram claims to be a proof (it starts with
// ProofPrefix's first byte, which no packet does).
func IsProof(b []byte) bool { return len(b) > 0 && b[0] == ProofPrefix[0] }

// ParseProof returns the token of a proof datagram, or ok false if b is
// not exactly one.
func ParseProof(b []byte) (token string, ok bool) {
	if len(b) != ProofLen || !bytes.HasPrefix(b, []byte(ProofPrefix)) {
		return "", false
	}
	t := b[len(ProofPrefix):]
	for _, c := range t {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", false
		}
	}
	return string(t), true
}
