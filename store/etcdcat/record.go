package etcdcat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fxshell/fxsh/store"
)

// Key layout under the prefix P (DefaultPrefix unless configured):
//
//	P servers/<addr>                      server record, written last: the commit marker
//	P files/<addr>/<lease>/<name>         one file record per file
//
// <addr> and <name> are path-escaped (url.PathEscape, so '/' becomes %2F) and
// <lease> is the registration's lease ID in 16 hex digits. Every key of one
// registration is attached to the same lease, so revoking or expiring the
// lease deletes the whole registration in one revision. Putting the lease in
// file keys keeps two registrations of the same address (a re-registration,
// or two masters racing after a failover) from ever writing the same key: a
// reader indexes only the files whose lease equals the one on the server key.
const (
	serversDir = "servers/"
	filesDir   = "files/"
)

// Record format versions: the first byte of every value.
const (
	fileRecordV1   = 'F'
	serverRecordV1 = 'S'
)

// MaxRecordString is the longest string a record may hold. The master already
// limits names to 1 KiB; this cap only keeps a corrupt or hostile value in
// etcd from making a reader allocate without bound.
const MaxRecordString = 64 << 10

// Errors from parsing records and keys.
var (
	errShortRecord = errors.New("record truncated")
	errBadRecord   = errors.New("malformed record")
)

// serverRecord is the value of a server key.
type serverRecord struct {
	Role       string
	Name       string
	Files      int       // number of file keys of this registration
	Registered time.Time // when the registration was made
}

func serverKey(prefix, addr string) string {
	return prefix + serversDir + url.PathEscape(addr)
}

func filesKeyPrefix(prefix, addr string, lease int64) string {
	return prefix + filesDir + url.PathEscape(addr) + "/" + leaseHex(lease) + "/"
}

func fileKey(prefix, addr string, lease int64, name string) string {
	return filesKeyPrefix(prefix, addr, lease) + url.PathEscape(name)
}

func leaseHex(lease int64) string {
	s := strconv.FormatUint(uint64(lease), 16)
	return strings.Repeat("0", 16-len(s)) + s
}

// parseServerKey returns the address of a key relative to the prefix.
func parseServerKey(rel string) (addr string, ok bool) {
	esc, found := strings.CutPrefix(rel, serversDir)
	if !found || esc == "" || strings.Contains(esc, "/") {
		return "", false
	}
	addr, err := url.PathUnescape(esc)
	if err != nil {
		return "", false
	}
	return addr, true
}

// parseFileKey splits a key relative to the prefix into the server address,
// the lease and the escaped file name (kept escaped: it only names the key).
func parseFileKey(rel string) (addr string, lease int64, escName string, ok bool) {
	rest, found := strings.CutPrefix(rel, filesDir)
	if !found {
		return "", 0, "", false
	}
	escAddr, rest, found := strings.Cut(rest, "/")
	if !found || escAddr == "" {
		return "", 0, "", false
	}
	hex, escName, found := strings.Cut(rest, "/")
	if !found || len(hex) != 16 || escName == "" {
		return "", 0, "", false
	}
	l, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		return "", 0, "", false
	}
	addr, err = url.PathUnescape(escAddr)
	if err != nil {
		return "", 0, "", false
	}
	return addr, int64(l), escName, true
}

// Time flags in records: whether the time was in UTC (else it is read back in
// the local zone; other zones are not kept).
const timeUTC = 1

func appendTime(b []byte, t time.Time) []byte {
	var flags byte
	if t.Location() == time.UTC {
		flags |= timeUTC
	}
	b = append(b, flags)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendFileRecord appends the value of a file key: a version byte, then
// name, size, type, mtime and hash.
func appendFileRecord(b []byte, f store.File) []byte {
	b = append(b, fileRecordV1)
	b = appendString(b, f.Name)
	b = binary.AppendVarint(b, f.Size)
	b = appendString(b, f.Type)
	b = appendTime(b, f.MTime)
	return appendString(b, f.Hash)
}

// parseFileRecord is the mirror image of appendFileRecord.
func parseFileRecord(b []byte) (store.File, int, error) {
	var f store.File
	r := reader{b: b}
	if v := r.byte(); r.err == nil && v != fileRecordV1 {
		return f, 0, fmt.Errorf("file record version %q: %w", v, errBadRecord)
	}
	f.Name = r.string()
	f.Size = r.varint()
	f.Type = r.string()
	f.MTime = r.time()
	f.Hash = r.string()
	if r.err != nil {
		return store.File{}, 0, fmt.Errorf("parsing file record: %w", r.err)
	}
	if f.Size < 0 {
		return store.File{}, 0, fmt.Errorf("file record size %d: %w", f.Size, errBadRecord)
	}
	return f, r.off, nil
}

// appendServerRecord appends the value of a server key: a version byte, then
// role, name, file count and registration time.
func appendServerRecord(b []byte, s serverRecord) []byte {
	b = append(b, serverRecordV1)
	b = appendString(b, s.Role)
	b = appendString(b, s.Name)
	b = binary.AppendUvarint(b, uint64(s.Files))
	return appendTime(b, s.Registered)
}

// parseServerRecord is the mirror image of appendServerRecord.
func parseServerRecord(b []byte) (serverRecord, int, error) {
	var s serverRecord
	r := reader{b: b}
	if v := r.byte(); r.err == nil && v != serverRecordV1 {
		return s, 0, fmt.Errorf("server record version %q: %w", v, errBadRecord)
	}
	s.Role = r.string()
	s.Name = r.string()
	n := r.uvarint()
	s.Registered = r.time()
	if r.err != nil {
		return serverRecord{}, 0, fmt.Errorf("parsing server record: %w", r.err)
	}
	if n > MaxFiles {
		return serverRecord{}, 0, fmt.Errorf("server record file count %d: %w", n, errBadRecord)
	}
	s.Files = int(n)
	return s, r.off, nil
}

// reader reads record fields; the first error sticks and later reads return
// zero values.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail(errShortRecord)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		if n == 0 {
			r.fail(errShortRecord)
		} else {
			r.fail(errBadRecord)
		}
		return 0
	}
	r.off += n
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		if n == 0 {
			r.fail(errShortRecord)
		} else {
			r.fail(errBadRecord)
		}
		return 0
	}
	r.off += n
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > MaxRecordString {
		r.fail(errBadRecord)
		return ""
	}
	if n > uint64(len(r.b)-r.off) {
		r.fail(errShortRecord)
		return ""
	}
	s := string(r.b[r.off : r.off+int(n)])
	r.off += int(n)
	return s
}

// Bounds of a time a record may carry: year 1 to 9999, like RFC 3339.
const (
	minUnix = -62135596800 // 0001-01-01T00:00:00Z
	maxUnix = 253402300799 // 9999-12-31T23:59:59Z
)

func (r *reader) time() time.Time {
	flags := r.byte()
	sec := r.varint()
	nsec := r.uvarint()
	if r.err != nil {
		return time.Time{}
	}
	if flags&^timeUTC != 0 || sec < minUnix || sec > maxUnix || nsec >= 1e9 {
		r.fail(errBadRecord)
		return time.Time{}
	}
	t := time.Unix(sec, int64(nsec))
	if flags&timeUTC != 0 {
		t = t.UTC()
	}
	return t
}
