package line

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// The handshake's challenge-response (see PROTOCOL.md): the master sends a
// fresh nonce, the peer answers with ClientMAC over both nonces, and the
// master proves it holds the key too with MasterMAC in HI. Different
// labels keep one side's MAC from being replayed as the other's; the key
// never crosses the wire.

// NewNonce returns NonceLen random bytes in hex.
func NewNonce() string {
	b := make([]byte, NonceLen)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// ValidNonce reports whether s looks like a nonce: 16 to 64 lower-case
// hex digits.
func ValidNonce(s string) bool {
	if len(s) < 16 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func mac(key []byte, parts ...string) string {
	h := hmac.New(sha256.New, key)
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{' '})
		}
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ClientMAC is what a peer with role sends in "AUTH mac=" to answer the
// master's nonce; cnonce is the nonce of its HELLO ("" when it sent none).
func ClientMAC(key []byte, role, mnonce, cnonce string) string {
	return mac(key, Version, "client", role, mnonce, cnonce)
}

// MasterMAC is what the master sends in "HI ... mac=" to prove it holds
// the key as well.
func MasterMAC(key []byte, mnonce, cnonce string) string {
	return mac(key, Version, "master", mnonce, cnonce)
}

// EqualMAC compares two MACs in constant time.
func EqualMAC(a, b string) bool {
	return hmac.Equal([]byte(a), []byte(b))
}
