package transfer

import "crypto/sha256"

// UDPKey derives the chunk protocol's key (ServerConfig.Key,
// ClientConfig.Key) from the shared secret: any passphrase length is
// accepted on the command line, the AEAD wants 32 bytes, and the TCP
// protocol's HMAC must not reuse the same bytes. "" (an open network)
// gives nil.
func UDPKey(secret string) []byte {
	if secret == "" {
		return nil
	}
	h := sha256.Sum256([]byte("fxsh/1 udp key\x00" + secret))
	return h[:]
}
