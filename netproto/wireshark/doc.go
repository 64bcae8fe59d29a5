// Package wireshark ships fxsh.lua, a Wireshark dissector for both of
// fxsh's protocols (the UDP chunk protocol and the master's TCP lines), and
// tests it with tshark on captures written by netproto/pcap.
//
// Install it by copying the one file into Wireshark's personal plugins
// folder (see the comment at its top, or the README's classroom tour);
// fxsh itself writes the captures it reads (`trace --pcap FILE`).
package wireshark

import _ "embed"

// Dissector is the text of fxsh.lua.
//
//go:embed fxsh.lua
var Dissector string
