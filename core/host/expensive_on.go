//go:build invariants

package host

// Expensive is true in builds with the "invariants" tag: expensive
// assertions run (see assert.go).
const Expensive = true
