package transfer

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"time"
)

// CookieLifetime is how long a RETRY cookie is accepted. A client echoes
// it within one round trip; a minute covers slow links and a client that
// retries, and bounds how long a captured REQUEST can be replayed.
const CookieLifetime = 60 * time.Second

const cookieLen = 4 + 16

// cookieJar makes and checks address-validation cookies without state:
// cookie = t ‖ HMAC-SHA256(secret, t ‖ address ‖ port ‖ transfer id)[:16],
// t = whole seconds since the server started (monotonic clock). The secret
// is random per Server, so a restart invalidates every cookie.
type cookieJar struct {
	secret [32]byte
	start  time.Time
}

func newCookieJar() *cookieJar {
	j := &cookieJar{start: time.Now()}
	_, _ = rand.Read(j.secret[:]) // crypto/rand.Read never fails on supported platforms
	return j
}

func (j *cookieJar) mac(t uint32, addr netip.AddrPort, tid uint64) []byte {
	m := hmac.New(sha256.New, j.secret[:])
	var b [4 + 16 + 2 + 8]byte
	binary.BigEndian.PutUint32(b[0:], t)
	a16 := addr.Addr().Unmap().As16()
	copy(b[4:], a16[:])
	binary.BigEndian.PutUint16(b[20:], addr.Port())
	binary.BigEndian.PutUint64(b[22:], tid)
	m.Write(b[:])
	return m.Sum(nil)[:16]
}

func (j *cookieJar) now(now time.Time) uint32 { return uint32(now.Sub(j.start) / time.Second) }

func (j *cookieJar) make(addr netip.AddrPort, tid uint64, now time.Time) []byte {
	t := j.now(now)
	c := binary.BigEndian.AppendUint32(make([]byte, 0, cookieLen), t)
	return append(c, j.mac(t, addr, tid)...)
}

func (j *cookieJar) check(cookie []byte, addr netip.AddrPort, tid uint64, now time.Time) bool {
	if len(cookie) != cookieLen {
		return false
	}
	t := binary.BigEndian.Uint32(cookie)
	cur := j.now(now)
	if t > cur || time.Duration(cur-t)*time.Second > CookieLifetime {
		return false
	}
	return hmac.Equal(cookie[4:], j.mac(t, addr, tid))
}
