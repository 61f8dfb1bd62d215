package check

import (
	"fmt"
	"slices"
	"sync"
)

// OpKind is the kind of a single-key client operation.
type OpKind int

const (
	// Put sets Key to Value (etcd Put).
	Put OpKind = iota + 1
	// Get reads Key (etcd Range on one key).
	Get
	// Delete removes Key (etcd DeleteRange on one key).
	Delete
	// CAS puts Value if Key currently holds Expect, or if Key is absent
	// when Expect is "": an etcd Txn comparing value == Expect (or
	// create_revision == 0) whose success branch is a Put.
	CAS
)

// String returns the kind's name.
func (k OpKind) String() string {
	switch k {
	case Put:
		return "put"
	case Get:
		return "get"
	case Delete:
		return "delete"
	case CAS:
		return "cas"
	}
	return fmt.Sprintf("OpKind(%d)", int(k))
}

// Outcome is what the client learned about whether an operation happened.
type Outcome int

const (
	// Ok means the operation returned a response: it took effect exactly
	// once, between Call and Return, and Output holds the response.
	Ok Outcome = iota + 1
	// Fail means a definite failure: the operation did not happen at all
	// (for example the request was rejected by admission control before it
	// was proposed). Failed operations carry no information and are left
	// out of every check.
	Fail
	// Unknown means an indeterminate result (timeout, connection lost): the
	// operation may or may not have taken effect, at any time after Call,
	// even after Return. Output is meaningless.
	Unknown
)

// String returns the outcome's name.
func (o Outcome) String() string {
	switch o {
	case Ok:
		return "ok"
	case Fail:
		return "fail"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Output is the response of an operation whose Outcome is Ok.
type Output struct {
	// Found reports, for Get, that the key exists. For Delete it reports
	// that the delete removed a key (etcd's deleted count > 0); recorders
	// that do not look at the count leave it false, so only true is
	// checked.
	Found bool
	// Value is the value read by a Get that found the key.
	Value string
	// Succeeded reports, for CAS, that the compare held and the put was
	// applied.
	Succeeded bool
	// Revision is the response header revision, 0 when not known. For a
	// write that changed the store (Put, successful CAS, Delete that
	// removed a key) it is the write's own revision, which is also the
	// key's new mod revision; for a read, a failed CAS or a delete of
	// nothing it is the store revision the request was served at.
	Revision int64
}

// Op is one client operation on one key, with the times it was called and
// returned. Times are nanoseconds on any clock shared by all clients: virtual
// time in the simulator, wall time in real-cluster tests.
type Op struct {
	// ClientID identifies the client that issued the operation. Clients
	// should not run two operations at once; a client that gives up on an
	// operation (Outcome Unknown) should continue under a new ID.
	ClientID int
	// Kind is the operation.
	Kind OpKind
	// Key is the key operated on; never empty.
	Key string
	// Value is the value written by Put and by a successful CAS.
	Value string
	// Expect is the value CAS compares against; "" means the key must be
	// absent. Must be "" for other kinds.
	Expect string
	// Call is when the client sent the request.
	Call int64
	// Return is when the client received the response (or gave up, for
	// Unknown, where it is not used).
	Return int64
	// Outcome says whether the operation happened.
	Outcome Outcome
	// Output is the response, meaningful only when Outcome is Ok.
	Output Output
}

// Validate reports why op is not a well-formed history element, or nil.
func (op Op) Validate() error {
	switch {
	case op.Kind < Put || op.Kind > CAS:
		return fmt.Errorf("invalid kind %d (want Put, Get, Delete or CAS)", int(op.Kind))
	case op.Outcome < Ok || op.Outcome > Unknown:
		return fmt.Errorf("invalid outcome %d (want Ok, Fail or Unknown)", int(op.Outcome))
	case op.Key == "":
		return fmt.Errorf("%v with empty key", op.Kind)
	case op.Kind != CAS && op.Expect != "":
		return fmt.Errorf("%v on %q sets Expect %q, which only CAS uses", op.Kind, op.Key, op.Expect)
	case op.Outcome != Unknown && op.Return < op.Call:
		return fmt.Errorf("%v on %q returns at %d before its call at %d", op.Kind, op.Key, op.Return, op.Call)
	case op.Output.Revision < 0:
		return fmt.Errorf("%v on %q has negative revision %d", op.Kind, op.Key, op.Output.Revision)
	}
	return nil
}

// String describes the operation in one line, for violation reports.
func (op Op) String() string {
	var s string
	switch op.Kind {
	case Put:
		s = fmt.Sprintf("put(%q, %q)", op.Key, op.Value)
	case Get:
		s = fmt.Sprintf("get(%q)", op.Key)
	case Delete:
		s = fmt.Sprintf("delete(%q)", op.Key)
	case CAS:
		s = fmt.Sprintf("cas(%q, %s -> %q)", op.Key, describeExpect(op.Expect), op.Value)
	default:
		s = op.Kind.String()
	}
	s = fmt.Sprintf("client %d %s [%d, %d] %v", op.ClientID, s, op.Call, op.Return, op.Outcome)
	if op.Outcome != Ok {
		return s
	}
	switch op.Kind {
	case Get:
		if op.Output.Found {
			s += fmt.Sprintf(" %q", op.Output.Value)
		} else {
			s += " absent"
		}
	case Delete:
		if op.Output.Found {
			s += " deleted"
		}
	case CAS:
		if op.Output.Succeeded {
			s += " succeeded"
		} else {
			s += " failed"
		}
	}
	if op.Output.Revision > 0 {
		s += fmt.Sprintf(" rev %d", op.Output.Revision)
	}
	return s
}

func describeExpect(expect string) string {
	if expect == "" {
		return "absent"
	}
	return fmt.Sprintf("%q", expect)
}

// isAckedWrite reports whether op is an acknowledged write that consumed a
// revision of its own: a Put, a successful CAS or a Delete that removed a key,
// with Outcome Ok.
func (op Op) isAckedWrite() bool {
	if op.Outcome != Ok {
		return false
	}
	switch op.Kind {
	case Put:
		return true
	case CAS:
		return op.Output.Succeeded
	case Delete:
		return op.Output.Found
	}
	return false
}

// mustValidate panics on the first malformed op: the harness that recorded
// the history is broken and no verdict on it would mean anything.
func mustValidate(h []Op) {
	for i, op := range h {
		if err := op.Validate(); err != nil {
			panic(fmt.Sprintf("check: malformed history: op %d: %v", i, err))
		}
	}
}

// History collects operations from many goroutines, for real-cluster tests.
// The zero value is ready to use.
type History struct {
	mu  sync.Mutex
	ops []Op
}

// Record appends op to the history. It is safe to call from many goroutines.
func (h *History) Record(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns a copy of the operations recorded so far, in recording order.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// Len returns the number of operations recorded so far.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ops)
}
