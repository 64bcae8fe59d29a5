// Package push is fxsh's push roles: a peer in receive mode and a peer
// that sends it a file (netproto/PROTOCOL.md, "Push").
//
// Receiver (receiver.go) registers with the master as role receiver,
// checks each offer the master relays (a name already in its folder, one
// it is already receiving, too many waiting: refused), accepts it at once
// when AutoAccept says so or keeps it waiting for Accept or Refuse, pulls
// an accepted file through the download role (netproto/download: the same
// path as get) and tells the sender how it ended (DONE, relayed by the
// master). Sender (sender.go) hashes a file, serves it from a UDP file
// server of its own (one for every push in flight), offers it through a
// masterclient.Client and waits for the answer and then the result,
// reporting progress from the receiver's acknowledgements. Both report
// through values and callbacks (Event, SendEvent); neither prints.
package push

import (
	"strings"

	"github.com/fxshell/fxsh/netproto/masterclient"
)

// Offer is a push offer as the master relays it.
type Offer = masterclient.Offer

// MaxFailureText bounds the failure a receiver reports to the sender
// (DONE error=): one line, short enough for a job line.
const MaxFailureText = 200

// oneLine makes an error text fit a protocol field and a job line.
func oneLine(text string) string {
	t := strings.Join(strings.Fields(text), " ")
	if len(t) > MaxFailureText {
		t = t[:MaxFailureText] + "…"
	}
	return t
}

// offeredBy names who offered o: the master's name for the sender, or the
// address of its file server.
func offeredBy(o *Offer) string {
	if o.By != "" {
		return o.By
	}
	return o.From
}
