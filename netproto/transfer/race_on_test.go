//go:build race

package transfer

// raceEnabled trims the slowest cases under the race detector.
const raceEnabled = true
