package sim

import (
	"container/heap"

	"github.com/tenfold/tenfold/core"
)

// eventKind says what an event does when its time comes.
type eventKind uint8

const (
	evTick         eventKind = iota + 1 // tick one node
	evDeliver                           // deliver one message to a node
	evEmit                              // a node's outputs leave it (after fsync)
	evSubmit                            // a client request reaches its node
	evClientNext                        // a client starts its next operation
	evClientGiveUp                      // a client stops waiting for an operation
	evLeaseNext                         // a lease client starts its next operation
	evFault                             // a fault starts or heals
	evCheck                             // periodic invariant checks
	evHash                              // periodic replica checksum comparison
	evWatch                             // (re)create watches that are not running
	evPhase                             // the run moves to its next phase
	evScan                              // a read across every key group (S8)
)

func (k eventKind) String() string {
	switch k {
	case evTick:
		return "tick"
	case evDeliver:
		return "deliver"
	case evEmit:
		return "emit"
	case evSubmit:
		return "submit"
	case evClientNext:
		return "client-next"
	case evClientGiveUp:
		return "client-give-up"
	case evLeaseNext:
		return "lease-next"
	case evFault:
		return "fault"
	case evCheck:
		return "check"
	case evHash:
		return "hash"
	case evWatch:
		return "watch"
	case evPhase:
		return "phase"
	case evScan:
		return "scan"
	}
	return "?"
}

// event is one scheduled thing. Only the fields its kind needs are set.
type event struct {
	at   int64 // virtual nanoseconds since the start of the run
	seq  uint64
	kind eventKind
	node uint64 // target node
	inc  int    // target node's incarnation when scheduled
	from uint64 // sender of a delivered message
	data []byte // a delivered message, marshalled

	out    *core.Output // evEmit
	req    *core.ClientRequest
	client int     // evClientNext, evClientGiveUp, evLeaseNext
	reqID  uint64  // evClientGiveUp, evSubmit
	action *action // evFault
}

// eventQueue is a min-heap of events by (time, sequence number): events at
// the same virtual time run in the order they were scheduled.
type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}

// schedule queues e at virtual time at.
func (s *Sim) schedule(at int64, e *event) {
	if at < s.now {
		at = s.now
	}
	s.seq++
	e.at, e.seq = at, s.seq
	heap.Push(&s.queue, e)
}
