//go:build race

package memcat

const raceOn = true
