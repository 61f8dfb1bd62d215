//go:build !invariants

package host

// Expensive is false without the "invariants" build tag: expensive
// assertions are compiled out (see assert.go).
const Expensive = false
