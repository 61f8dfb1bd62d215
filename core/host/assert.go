package host

import "fmt"

// Assertions in the code. A state machine that finds a wrong state stops
// its node at once with the ID of the invariant it broke (INVARIANTS.md
// lists them, with where each is asserted), rather than let the wrong state
// travel: the node's core fails like on any fatal error (Node.Ready returns
// the error; the runtime stops the node, the simulator reports a violation
// and restarts it). Each property is asserted at two places where it can
// be (where it is produced and where it is consumed), so the first wrong
// state is caught whichever side broke it.
//
// Cheap checks are always on. Expensive ones (a read back from the engine,
// a scan) run only in builds with the "invariants" tag, which the test
// script and soak runs use:
//
//	go test -tags invariants ./...
//	go build -tags invariants -o bin/tenfold ./cmd/tenfold && bin/tenfold sim ...

// InvariantError is the error a node stops with when an invariant breaks.
type InvariantError struct {
	ID     string // the invariant, as INVARIANTS.md names it
	Detail string
}

func (e *InvariantError) Error() string {
	return fmt.Sprintf("invariant %s violated: %s", e.ID, e.Detail)
}

// Violated returns the error for a broken invariant id.
func Violated(id, format string, args ...any) error {
	return &InvariantError{ID: id, Detail: fmt.Sprintf(format, args...)}
}

// Assert stops the node (Host.Fail) with invariant id unless ok, and
// reports ok, so that the caller can abandon the wrong step.
func Assert(h Host, ok bool, id, format string, args ...any) bool {
	if !ok {
		h.Fail(Violated(id, format, args...))
	}
	return ok
}
