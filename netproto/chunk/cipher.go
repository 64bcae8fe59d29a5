package chunk

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/chacha20poly1305"
)

// TagLen is the AEAD tag a sealed packet carries after its ciphertext.
const TagLen = chacha20poly1305.Overhead

// MinKeyLen is the shortest shared key NewCipher accepts.
const MinKeyLen = 16

// Role says which end of a transfer seals with a Cipher; it is part of the
// nonce, so the two directions never share one.
type Role uint8

// Roles.
const (
	RoleClient Role = 1
	RoleServer Role = 2
)

// ErrOpen is what Open returns for a packet that does not authenticate.
var ErrOpen = errors.New("chunk: packet does not authenticate")

// Cipher seals and opens the packets of one transfer. The key is
// HKDF-SHA256(shared key, salt "fxsh/1 chunk", info transfer id); the nonce
// is the sender's role (4 bytes) and the packet number (8 bytes); the
// additional data is the header's first 28 bytes (everything but the CRC).
// Each sender starts its packet numbers at a random point and counts up, and
// stateless replies use random numbers with the top bit set, so no nonce
// repeats under one key. A Cipher is safe for concurrent use.
type Cipher struct {
	aead cipher.AEAD
	role Role
}

// NewCipher derives the key of transfer id from the shared key, for a
// sender playing role.
func NewCipher(shared []byte, transfer uint64, role Role) (*Cipher, error) {
	if len(shared) < MinKeyLen {
		return nil, fmt.Errorf("chunk: shared key of %d bytes (min %d)", len(shared), MinKeyLen)
	}
	if role != RoleClient && role != RoleServer {
		return nil, fmt.Errorf("chunk: bad role %d", role)
	}
	var info [8]byte
	binary.BigEndian.PutUint64(info[:], transfer)
	key, err := hkdf.Key(sha256.New, shared, []byte("fxsh/1 chunk"), string(info[:]), chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("chunk: deriving key: %w", err)
	}
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, fmt.Errorf("chunk: making AEAD: %w", err)
	}
	return &Cipher{aead: aead, role: role}, nil
}

func nonce(role Role, number uint64) [12]byte {
	var n [12]byte
	n[3] = byte(role)
	binary.BigEndian.PutUint64(n[4:], number)
	return n
}

// seal encrypts the payload of the packet at b[start:] in place and appends
// the tag. The header's flags and length must already be final.
func (c *Cipher) seal(b []byte, start int) []byte {
	b = slices.Grow(b, TagLen) // so Seal works in place
	pkt := b[start:]
	n := nonce(c.role, binary.BigEndian.Uint64(pkt[20:]))
	plain := pkt[HeaderLen:]
	out := c.aead.Seal(plain[:0], n[:], plain, pkt[:crcOffset])
	return b[:start+HeaderLen+len(out)]
}

// Open authenticates and decrypts a sealed packet pkt (exactly the bytes
// ParsePacket used) in place and returns the plaintext payload. The peer's
// role is the other one.
func (c *Cipher) Open(pkt []byte) ([]byte, error) {
	if len(pkt) < HeaderLen+TagLen || Flags(pkt[4])&FlagSealed == 0 {
		return nil, ErrOpen
	}
	peer := RoleServer
	if c.role == RoleServer {
		peer = RoleClient
	}
	n := nonce(peer, binary.BigEndian.Uint64(pkt[20:]))
	ct := pkt[HeaderLen:]
	plain, err := c.aead.Open(ct[:0], n[:], ct, pkt[:crcOffset])
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}
