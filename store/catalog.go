// Package store keeps fxsh's state: the master's catalog of file servers and
// their files, the index of a shared folder, and partial downloads.
//
// Catalog is the master's view of the network. Server is one registered file
// server (or receiver), File one file it offers and Entry one distinct file in
// the index (a name and a content hash) with every server that offers it.
// The in-memory catalog lives in store/memcat, the etcd one in store/etcdcat,
// and store/catalogtest holds the test suite every implementation must pass.
// The shared-folder index lives in store/shareindex and resumable download
// files in store/partfile.
package store

import (
	"context"
	"errors"
	"strings"
	"time"
)

// File is one file a server offers.
type File struct {
	Name  string    // relative name, '/'-separated, never absolute, never with ".."
	Size  int64     // bytes
	Type  string    // short type word: "text", "jpg", "pdf", "bin", ...
	MTime time.Time // modification time (second precision on the wire)
	Hash  string    // content hash: HashPrefix + 64 lower-case hex digits (see hash.go)
}

// Server is one registered peer.
type Server struct {
	Addr       string    // UDP HOST:PORT it serves on; the key of a registration
	Role       string    // RoleServer or RoleReceiver
	Name       string    // optional display name (receive --as NAME)
	Files      int       // number of files registered
	Registered time.Time // when the current registration was made
	LastSeen   time.Time // last registration or heartbeat
}

// Peer roles.
const (
	RoleServer   = "server"
	RoleReceiver = "receiver"
)

// Entry is one distinct file in the index: same name and same hash. The same
// content offered by several servers is one Entry with several Servers.
type Entry struct {
	File
	Servers []string // Addr of every server offering it, sorted
}

// Cursor is where a listing by pages resumes: after the entry of this name
// and hash, in the order of name then hash.
type Cursor struct {
	Name, Hash string
}

// After reports whether the entry (name, hash) sorts after the cursor: the
// zero cursor is before every entry, and a cursor without a hash is after
// every entry of its name.
func (c Cursor) After(name, hash string) bool {
	if name != c.Name {
		return name > c.Name
	}
	return c.Hash != "" && hash > c.Hash
}

// UnderPrefix reports whether name lies under the folder prefix ("" or
// ending in "/"): every name is under "".
func UnderPrefix(name, prefix string) bool { return strings.HasPrefix(name, prefix) }

// Catalog is the master's index of servers and files. Implementations are
// safe for concurrent use.
type Catalog interface {
	// Register records srv and replaces its whole file list.
	Register(ctx context.Context, srv Server, files []File) error
	// Heartbeat keeps a registration alive.
	Heartbeat(ctx context.Context, addr string) error
	// Unregister removes a server and its files at once.
	Unregister(ctx context.Context, addr string) error
	// Servers lists live servers sorted by Addr.
	Servers(ctx context.Context) ([]Server, error)
	// Files lists entries whose name matches glob (path.Match syntax,
	// "" or "*" for all), sorted by name then hash.
	Files(ctx context.Context, glob string) ([]Entry, error)
	// FilesUnder lists at most max entries whose name starts with prefix
	// (a folder: "" or ending in "/"), sorted by name then hash, starting
	// after the cursor: the first entry after (after.Name, after.Hash) in
	// that order (a zero cursor: from the first). A listing of a big
	// folder is read page by page, each page's last entry the next one's
	// cursor, so no answer has to hold the whole folder.
	FilesUnder(ctx context.Context, prefix string, after Cursor, max int) ([]Entry, error)
	// Search returns at most max entries whose name contains every word of
	// q, case-insensitively, sorted by name then hash.
	Search(ctx context.Context, q string, max int) ([]Entry, error)
	// Close releases the catalog's resources.
	Close() error
}

// Errors a Catalog returns.
var (
	ErrNotFound    = errors.New("not registered")      // Heartbeat/Unregister of an unknown addr
	ErrUnavailable = errors.New("catalog unavailable") // backing store down (maps to ERR 503)
)
