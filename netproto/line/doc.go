// Package line is the vocabulary and codec of fxsh's master protocol: text
// lines "VERB arg key=value ..." over TCP, in the spirit of net/textproto.
//
// Msg is one line: a verb, positional arguments and key=value fields.
// AppendMsg and ParseMsg encode and decode it as mirror images, escaping
// values ADC-style (\s space, \n newline, \\ backslash, ...) so any UTF-8
// string round-trips. Reader reads bounded lines (ErrLineTooLong past the
// limit) and Writer writes them; both can report each raw line to a trace
// hook. Error is a refusal the peer sent on purpose ("ERR <code> <text>"),
// ProtocolError is garbage the peer sent, quoting it. FileMsg/ParseFile and
// PeerMsg/ParsePeer map the protocol's records to the store types, and
// CheckName, CheckHash and CheckFile hold the rules for the values a
// registration may carry. limits.go names every limit and error code.
//
// The protocol itself is specified in netproto/PROTOCOL.md.
package line
