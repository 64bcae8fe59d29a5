package line

import (
	"strconv"
	"strings"
	"time"

	"github.com/fxshell/fxsh/store"
)

// Record limits.
const (
	MaxType = 32 // bytes in a type word
	// MaxServers bounds the addresses in one F record's servers= field, so
	// that a record with a MaxName name and IPv6 addresses fits in MaxLine.
	// A reply lists the first MaxServers servers of an entry.
	MaxServers = 32
	HashPrefix = store.HashPrefix
	// MaxSize bounds a file's size in a record: 2^50 bytes (1 PiB), the
	// chunk protocol's limit (chunk.MaxFileSize), so that a catalog never
	// lists a file no client could fetch, and size arithmetic stays far
	// from overflow.
	MaxSize = 1 << 50
)

// FileMsg returns the F record of e: name, size, type, mtime (Unix
// seconds), hash and, when e has servers, servers=ADDR,ADDR...
func FileMsg(e store.Entry) Msg {
	m := NewMsg(VerbFile).
		With("name", e.Name).
		WithInt("size", e.Size).
		With("type", e.Type).
		WithInt("mtime", e.MTime.Unix()).
		With("hash", e.Hash)
	if len(e.Servers) > 0 {
		srv := e.Servers[:min(len(e.Servers), MaxServers)]
		m = m.With("servers", strings.Join(srv, ","))
	}
	return m
}

// ParseFile returns the entry an F record carries, checked with CheckFile
// against maxName (MaxName when <= 0). Unknown fields are ignored, so later
// versions can add some.
func ParseFile(m Msg, maxName int) (store.Entry, error) {
	var e store.Entry
	if m.Verb != VerbFile {
		return e, &ProtocolError{Reason: "expected F record", Input: m.Verb}
	}
	var err error
	if e.Name, err = m.Require("name"); err != nil {
		return e, err
	}
	if e.Size, err = m.Int("size"); err != nil {
		return e, err
	}
	e.Type = m.Value("type")
	mt, err := m.Int("mtime")
	if err != nil {
		return e, err
	}
	e.MTime = time.Unix(mt, 0).UTC()
	if e.Hash, err = m.Require("hash"); err != nil {
		return e, err
	}
	if s, ok := m.Get("servers"); ok && s != "" {
		e.Servers = strings.Split(s, ",")
		if len(e.Servers) > MaxServers {
			return e, &ProtocolError{Reason: "too many servers", Input: s}
		}
	}
	return e, CheckFile(e.File, maxName)
}

// PeerMsg returns the P record of s: addr, role, files, since and seen
// (Unix seconds) and name when it has one.
func PeerMsg(s store.Server) Msg {
	m := NewMsg(VerbPeer).
		With("addr", s.Addr).
		With("role", s.Role).
		WithInt("files", int64(s.Files)).
		WithInt("since", s.Registered.Unix()).
		WithInt("seen", s.LastSeen.Unix())
	if s.Name != "" {
		m = m.With("name", s.Name)
	}
	return m
}

// ParsePeer returns the server a P record carries.
func ParsePeer(m Msg) (store.Server, error) {
	var s store.Server
	if m.Verb != VerbPeer {
		return s, &ProtocolError{Reason: "expected P record", Input: m.Verb}
	}
	var err error
	if s.Addr, err = m.Require("addr"); err != nil {
		return s, err
	}
	if s.Role, err = m.Require("role"); err != nil {
		return s, err
	}
	n, err := m.Int("files")
	if err != nil {
		return s, err
	}
	if n < 0 || n > MaxFiles*100 {
		return s, &ProtocolError{Reason: "bad file count", Input: m.Value("files")}
	}
	s.Files = int(n)
	since, err := m.Int("since")
	if err != nil {
		return s, err
	}
	seen, err := m.Int("seen")
	if err != nil {
		return s, err
	}
	s.Registered = time.Unix(since, 0).UTC()
	s.LastSeen = time.Unix(seen, 0).UTC()
	s.Name = m.Value("name")
	return s, nil
}

// CheckFile checks what a registration may carry for one file: a safe name
// (CheckName), a size from 0 to MaxSize, a short type word and a content
// hash.
func CheckFile(f store.File, maxName int) error {
	if err := CheckName(f.Name, maxName); err != nil {
		return err
	}
	if f.Size < 0 {
		return &ProtocolError{Reason: "negative size", Input: strconv.FormatInt(f.Size, 10)}
	}
	if f.Size > MaxSize {
		return &ProtocolError{Reason: "size over 2^50", Input: strconv.FormatInt(f.Size, 10)}
	}
	if err := CheckType(f.Type); err != nil {
		return err
	}
	return CheckHash(f.Hash)
}

// CheckName checks that name is safe to offer and to write under a download
// folder: valid UTF-8 of at most max bytes (MaxName when max <= 0), relative,
// '/'-separated and clean (no "", "." or ".." element), without control
// characters (C0, DEL, C1) or bidirectional-text controls, which could
// disguise a name on a terminal.
func CheckName(name string, max int) error {
	if max <= 0 {
		max = MaxName
	}
	if why := store.NameProblem(name, max); why != "" {
		return &ProtocolError{Reason: "bad name: " + why, Input: name}
	}
	return nil
}

// CheckHash checks a content hash: HashPrefix followed by 64 lower-case
// hex digits.
func CheckHash(h string) error {
	if !store.ValidHash(h) {
		return &ProtocolError{Reason: "bad hash", Input: h}
	}
	return nil
}

// CheckType checks a type word: 1 to MaxType bytes of ASCII letters,
// digits and ".+_-".
func CheckType(t string) error {
	if t == "" || len(t) > MaxType {
		return &ProtocolError{Reason: "bad type", Input: t}
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".+_-", c) >= 0) {
			return &ProtocolError{Reason: "bad type", Input: t}
		}
	}
	return nil
}
