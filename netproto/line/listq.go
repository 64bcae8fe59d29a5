package line

import (
	"fmt"
	"strings"

	"github.com/fxshell/fxsh/store"
)

// A LIST request (PROTOCOL.md 1.5) takes one of two forms:
//
//	LIST [glob=GLOB] [max=N]                              names matching GLOB, one answer
//	LIST prefix=DIR/ [after=NAME [afterhash=HASH]] [max=N]  a folder, by pages
//
// The folder form lists every name under DIR/ at any depth (prefix= with
// an empty value: the whole catalog), sorted by name then hash, at most
// max a page; an answer with more=1 is continued by asking again with
// after= and afterhash= set to the last record's name and hash. So a
// folder of any size is read in bounded answers, and a page is never
// repeated or skipped when the catalog holds one name under several
// hashes.

// DefaultPageMax is the records of one page of a folder listing when max=
// is absent: a page is at most about 4 MB of records (1000 × MaxLine),
// small enough to hold and write at once, large enough that a classroom
// folder is one page.
const DefaultPageMax = 1000

// ListQuery is one LIST request.
type ListQuery struct {
	Glob string // path.Match pattern ("" for every name); not with Folder
	// Folder selects the folder form: every name under Prefix, by pages.
	Folder bool
	Prefix string       // "" (the whole catalog) or a folder name ending in "/"
	After  store.Cursor // the last record of the previous page (zero: from the first)
	Max    int          // records in the answer, 1 to MaxResults; 0: the master's default
}

// ListQueryMsg returns the LIST line of q.
func ListQueryMsg(q ListQuery) Msg {
	m := NewMsg(VerbList)
	if q.Folder {
		m = m.With("prefix", q.Prefix)
		if q.After.Name != "" {
			m = m.With("after", q.After.Name)
			if q.After.Hash != "" {
				m = m.With("afterhash", q.After.Hash)
			}
		}
	} else if q.Glob != "" {
		m = m.With("glob", q.Glob)
	}
	if q.Max > 0 {
		m = m.WithInt("max", int64(q.Max))
	}
	return m
}

// ParseListQuery reads a LIST line and checks it: max from 1 to
// MaxResults (larger values are capped to it), glob= and prefix= not
// together, a prefix that is a clean folder name ending in "/", and a
// cursor (only in the folder form) whose name passes CheckName and whose
// hash, when given, CheckHash. The glob's syntax is the catalog's to check.
func ParseListQuery(m Msg) (ListQuery, error) {
	var q ListQuery
	if m.Verb != VerbList {
		return q, &ProtocolError{Reason: "expected LIST", Input: m.Verb}
	}
	if _, ok := m.Get("max"); ok {
		n, err := m.Int("max")
		if err != nil || n < 1 {
			return q, &ProtocolError{Reason: fmt.Sprintf("max must be a number from 1 to %d", MaxResults), Input: m.Value("max")}
		}
		q.Max = int(min(n, MaxResults))
	}
	q.Glob = m.Value("glob")
	q.Prefix, q.Folder = m.Get("prefix")
	after, hasAfter := m.Get("after")
	hash, hasHash := m.Get("afterhash")
	switch {
	case !q.Folder && (hasAfter || hasHash):
		return q, &ProtocolError{Reason: "after= needs prefix=", Input: after}
	case !q.Folder:
		return q, nil
	case q.Glob != "":
		return q, &ProtocolError{Reason: "LIST takes glob= or prefix=, not both", Input: q.Glob}
	}
	if err := CheckPrefix(q.Prefix); err != nil {
		return q, err
	}
	if hasHash && !hasAfter {
		return q, &ProtocolError{Reason: "afterhash= needs after=", Input: hash}
	}
	if hasAfter {
		if err := CheckName(after, 0); err != nil {
			return q, &ProtocolError{Reason: "bad after: " + err.(*ProtocolError).Reason, Input: after}
		}
		q.After.Name = after
	}
	if hasHash {
		if err := CheckHash(hash); err != nil {
			return q, err
		}
		q.After.Hash = hash
	}
	return q, nil
}

// CheckPrefix checks a folder prefix: "" (every name), or a name that
// passes CheckName followed by "/".
func CheckPrefix(p string) error {
	if p == "" {
		return nil
	}
	dir, ok := strings.CutSuffix(p, "/")
	if !ok {
		return &ProtocolError{Reason: `prefix must be a folder ending in "/"`, Input: p}
	}
	if err := CheckName(dir, MaxName-1); err != nil {
		return &ProtocolError{Reason: "bad prefix: " + err.(*ProtocolError).Reason, Input: p}
	}
	return nil
}
