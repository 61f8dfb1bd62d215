// Package check judges client histories recorded by the deterministic
// simulator and by real-cluster tests against tenfold's safety invariants
// (INVARIANTS.md): linearizability of single-key operations (S1, via porcupine),
// revision order (S6, S7) and watch delivery (S6).
//
// Every checker is pure and deterministic: the same history gives the same
// verdict and the same violations, in the same order. Only
// CheckLinearizable depends on the wall clock, through its timeout.
//
// A malformed history (see Op.Validate) is a bug in the harness that recorded
// it, not in the system under test, so the checkers panic on it instead of
// reporting a violation.
package check
