package discovery

import (
	"fmt"
	"strings"
)

// TXTVersion is the version of the TXT record's layout (RFC 6763 §6.7's
// txtvers): a reader ignores keys it does not know, so it changes only if
// a key changes meaning.
const TXTVersion = "1"

// Limits of what a TXT record may make a browser store. A master's record
// is about 60 bytes; anything past these is garbage or hostile.
const (
	// MaxTXTStrings is the most strings read from one TXT record.
	MaxTXTStrings = 16
	// MaxTXTValue is the longest value kept (a version string, a catalog
	// kind).
	MaxTXTValue = 64
)

// Catalog kinds in the TXT record.
const (
	CatalogMemory = "memory"
	CatalogEtcd   = "etcd"
)

// Info is what a master says about itself in its TXT record. It never holds
// the key itself: only whether one is required.
type Info struct {
	Version     string // fxsh version of the master, e.g. "0.1.0"
	KeyRequired bool   // the master challenges every peer (--key)
	Catalog     string // CatalogMemory or CatalogEtcd
}

// TXT returns the record's strings, in this order:
//
//	txtvers=1 version=0.1.0 key=required|none catalog=memory|etcd
func (i Info) TXT() []string {
	key := "none"
	if i.KeyRequired {
		key = "required"
	}
	return []string{
		"txtvers=" + TXTVersion,
		"version=" + clean(i.Version),
		"key=" + key,
		"catalog=" + clean(i.Catalog),
	}
}

// clean keeps a value printable and bounded, so a record built from it
// parses back.
func clean(v string) string {
	v = strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f || r == '=' {
			return -1
		}
		return r
	}, v)
	if len(v) > MaxTXTValue {
		v = v[:MaxTXTValue]
	}
	return v
}

// ParseTXT reads a master's TXT record. Unknown keys are ignored (a newer
// master may add some); a record without txtvers=1, with a key twice, or
// with a value that is not printable or too long is refused, quoted.
func ParseTXT(txt []string) (Info, error) {
	if len(txt) > MaxTXTStrings {
		return Info{}, fmt.Errorf("txt record: %d strings, at most %d", len(txt), MaxTXTStrings)
	}
	var info Info
	seen := map[string]bool{}
	for _, s := range txt {
		k, v, _ := strings.Cut(s, "=")
		k = strings.ToLower(k) // keys are case-insensitive (RFC 6763 §6.4)
		if seen[k] {
			return Info{}, fmt.Errorf("txt record: key %q twice", k)
		}
		seen[k] = true
		if len(v) > MaxTXTValue || clean(v) != v {
			return Info{}, fmt.Errorf("txt record: bad value in %q", s)
		}
		switch k {
		case "txtvers":
			if v != TXTVersion {
				return Info{}, fmt.Errorf("txt record: txtvers %q, want %s", v, TXTVersion)
			}
		case "version":
			info.Version = v
		case "key":
			switch v {
			case "required":
				info.KeyRequired = true
			case "none":
			default:
				return Info{}, fmt.Errorf("txt record: key %q, want required or none", v)
			}
		case "catalog":
			info.Catalog = v
		}
	}
	if !seen["txtvers"] {
		return Info{}, fmt.Errorf("txt record %q: no txtvers", txt)
	}
	return info, nil
}

// String describes a master in a few words, as the shell prints it.
func (i Info) String() string {
	key := "open network"
	if i.KeyRequired {
		key = "key required"
	}
	v := i.Version
	if v == "" {
		v = "unknown version"
	}
	c := i.Catalog
	if c == "" {
		c = "unknown"
	}
	return fmt.Sprintf("fxsh %s, %s, catalog %s", v, key, c)
}
