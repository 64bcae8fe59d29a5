package line

import (
	"time"

	"github.com/fxshell/fxsh/store"
)

// Version is the protocol version; it appears only in HELLO and HI.
const Version = "fxsh/1"

// Limits. Each is enforced where the protocol is read and announced in HI
// where a peer needs to know it; the roles take overrides for tests.
const (
	// MaxLine bounds one line, its LF (and CR) included, so that a peer
	// can make us buffer at most this much before we see a whole message.
	MaxLine = 4096
	// MaxName bounds a file name in bytes: far above real paths, far below
	// MaxLine so that an F record always fits on one line (the limit every
	// part of fxsh shares, store.MaxNameLen).
	MaxName = store.MaxNameLen
	// MaxFiles bounds one registration: the catalog holds every file a
	// peer registers, so this caps what one connection can make us store.
	MaxFiles = 10000
	// MaxResults bounds the records of one LIST or SEARCH reply, so a
	// query cannot make the master (or a client) hold an unbounded answer.
	MaxResults = 10000
	// DefaultSearchMax is the number of SEARCH results when max= is absent.
	DefaultSearchMax = 100
	// DefaultListMax is the number of LIST results when max= is absent.
	DefaultListMax = MaxResults
	// MaxConns bounds the sessions a master serves at once: connections
	// past the handshake. A connection over it gets ERR 503 and is closed.
	MaxConns = 1000
	// MaxHandshakes bounds the connections a master holds before their
	// handshake is done, apart from MaxConns, so that connections that
	// never say HELLO (slowloris) cannot fill the sessions' slots. When a
	// new connection finds them full, the oldest handshaking connection is
	// closed to make room: an honest handshake takes one or two round
	// trips, so a flood must open MaxHandshakes connections within that
	// time to crowd one out.
	MaxHandshakes = 64
	// HelloTimeout bounds the handshake (HELLO and, with a key, AUTH): a
	// connection that has not completed it by then is closed. One or two
	// round trips need far less; 5 s leaves room for a congested Wi-Fi.
	HelloTimeout = 5 * time.Second
	// DefaultHeartbeat is how often a registered peer sends PING.
	DefaultHeartbeat = 10 * time.Second
	// DefaultTTL is how long a master keeps a silent registration.
	DefaultTTL = 30 * time.Second
	// NonceLen is the length in bytes of the handshake nonces (sent as hex).
	NonceLen = 16
)

// Error codes, the first argument of ERR.
const (
	CodeSyntax      = 400 // malformed line, unknown verb, bad field
	CodeAuth        = 401 // missing or wrong key
	CodeState       = 403 // message not allowed now or for this role
	CodeNotFound    = 404 // unknown peer or registration
	CodeConflict    = 409 // the address is registered by another connection: prove it (REGISTER proof=)
	CodeTooLong     = 413 // line over MaxLine; the connection is closed
	CodeTooMany     = 414 // registration over MaxFiles; the connection is closed
	CodeSlowDown    = 429 // rate limit exceeded; the connection is closed
	CodeUnavailable = 503 // catalog down, or too many connections
	CodeFull        = 507 // catalog full: the master holds as many files as it may
)

// Verbs.
const (
	VerbHello    = "HELLO"
	VerbAuth     = "AUTH"
	VerbHi       = "HI"
	VerbRegister = "REGISTER"
	VerbFile     = "F"
	VerbEnd      = "END"
	VerbOK       = "OK"
	VerbPing     = "PING"
	VerbPong     = "PONG"
	VerbList     = "LIST"
	VerbSearch   = "SEARCH"
	VerbPeers    = "PEERS"
	VerbPeer     = "P"
	VerbFound    = "FOUND"
	VerbNot      = "NOT" // "NOT FOUND"
	VerbBye      = "BYE"
	VerbErr      = "ERR"
	VerbOffer    = "OFFER"
	VerbAccept   = "ACCEPT"
	VerbRefuse   = "REFUSE"
	// VerbDone is the receiver's report that an accepted push ended,
	// relayed by the master to the sender: DONE offer=ID [error=TEXT].
	VerbDone = "DONE"
)

// Reasons a master gives, in REFUSE reason= or DONE error=, when it ends a
// push offer on the receiver's behalf.
const (
	ReasonNoAnswer     = "no answer"     // the receiver did not answer within the master's OfferTimeout
	ReasonReceiverGone = "receiver gone" // the receiver left (BYE, lost connection) before answering or finishing
)

// AuthScheme names the only challenge-response scheme, HMAC-SHA256.
const AuthScheme = "hmac-sha256"
