// Package monotonic holds a test, not code: it proves that fxsh's timers
// and durations read the monotonic clock, so that a step of the wall clock
// (an administrator, NTP, a VM resumed) breaks no timeout, TTL or rate.
//
// The parts, all in _test files:
//   - load_test.go lists the module's packages with `go list -export` and
//     type-checks every non-test file from source (go/types, standard
//     library only; dependencies come from their export data).
//   - check_test.go follows each time.Time through assignments, struct
//     fields, parameters, function results and clock functions held in
//     variables, and labels where it came from: the monotonic clock
//     (time.Now), the wall clock only (time.Unix, time.Date, time.Parse,
//     a file's ModTime, or a reading stripped by Round, Truncate, UTC,
//     Local, In or AddDate), or a fixed instant in 1970 (the "already past"
//     deadline). It reports the rules listed on rule.
//   - monotonic_test.go runs the check on the module against an allowlist
//     of legitimate wall-clock uses (one reason each), and on small bad and
//     good snippets, so that the check is seen to catch what it claims to.
//
// The live counterpart, integration/clockjump_test.go, steps the real
// clock during a download.
package monotonic
