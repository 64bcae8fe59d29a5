package transfer

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"testing"

	"github.com/fxshell/fxsh/netproto/chunk"
	"golang.org/x/crypto/chacha20poly1305"
)

// TestUDPKeyVector pins PROTOCOL.md 2.6 with the example it gives: the
// values were computed apart from fxsh (Python's hashlib and hmac, HKDF by
// hand), so a client written from the document can check itself against
// them, and fxsh cannot drift from the document unnoticed (the module
// rename once turned the labels into "github.com/fxshell/fxsh/1 ...").
func TestUDPKeyVector(t *testing.T) {
	const (
		shared = "e9a8847f9b1ac467d06cfe17d62ad51b43e06de2fc89e0bce2a290a2e9b07cc0" // SHA-256("fxsh/1 udp key\x00s3cret")
		tid    = 0x0102030405060708
		key    = "431debe98a55cf8804d1a899f84ee36ee084daeb9f68cf0005554cfe4fc52499" // HKDF-SHA256(shared, "fxsh/1 chunk", transfer id)
	)
	if got := hex.EncodeToString(UDPKey("s3cret")); got != shared {
		t.Fatalf("UDPKey(s3cret) = %s, want %s", got, shared)
	}
	c, err := chunk.NewCipher(UDPKey("s3cret"), tid, chunk.RoleClient)
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte("hello, server")
	pkt := chunk.AppendPacket(nil, chunk.Header{Kind: chunk.KindRequest, Flags: chunk.FlagSealed, Transfer: tid, Number: 42}, payload, c)
	// Open it as the document says: nonce = 3 zero bytes, the role (1
	// client), the packet number; additional data = header bytes 0-27.
	k, _ := hex.DecodeString(key)
	aead, err := chacha20poly1305.New(k)
	if err != nil {
		t.Fatal(err)
	}
	var nonce [12]byte
	nonce[3] = 1
	binary.BigEndian.PutUint64(nonce[4:], 42)
	got, err := aead.Open(nil, nonce[:], pkt[chunk.HeaderLen:], pkt[:28])
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("opening with the documented key: %q, %v", got, err)
	}
}
