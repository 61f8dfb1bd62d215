// Package host is the contract between the node core and the per-range
// state machines it hosts (core/datarange, core/system, core/control): the
// Host interface they call back through instead of holding a pointer to
// the node, the node configuration and deliberate bugs they read, and the
// request vocabulary they answer with (decoding by kind, the refusals every
// role uses, response headers). It imports nothing of the core, so every
// package of the core can import it.
package host

import (
	"bytes"
	"log/slog"
	"time"

	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/tenfoldpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// Host is what every state machine may ask of the node that hosts it. The
// node implements it; a state machine keeps no other reference to the node.
type Host interface {
	// ID is the node's ID; Incarnation the number of this start of it.
	ID() uint64
	Incarnation() uint64
	// Config is the node's configuration, defaults filled in; read only.
	Config() *Config
	// Engine holds everything the node persists.
	Engine() engine.Engine
	// Now is the node's clock, as of the last Tick.
	Now() time.Time
	Logger() *slog.Logger
	// Send queues a message to a node (delivered at once if it is this one).
	Send(to uint64, m *tenfoldpb.Message)
	// Reply answers a request at its origin.
	Reply(req *tenfoldpb.Request, resp proto.Message, err error)
	// Fail stops the node: an unrecoverable error, or a broken invariant.
	Fail(err error)
}

// Span is a half-open key interval [Start, End); an empty End is the end of
// the keyspace.
type Span struct {
	Start, End []byte
}

// Contains reports whether key is in s.
func (s Span) Contains(key []byte) bool {
	return bytes.Compare(key, s.Start) >= 0 && (len(s.End) == 0 || bytes.Compare(key, s.End) < 0)
}

// Overlaps reports whether s and o share a key.
func (s Span) Overlaps(o Span) bool {
	return (len(o.End) == 0 || bytes.Compare(s.Start, o.End) < 0) && (len(s.End) == 0 || bytes.Compare(o.Start, s.End) < 0)
}

// Applied is a range's progress in one Ready round, for watchers.
type Applied struct {
	RangeID uint64
	Span    Span
	Events  []*mvccpb.Event
	// Resolved: every event of this range at or below it has been applied.
	Resolved int64
}
