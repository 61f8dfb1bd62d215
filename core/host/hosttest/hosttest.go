// Package hosttest is a node of one for the unit tests of the state
// machines (core/datarange, core/system, core/replica): it implements the
// Host interfaces they call back through, records what they send, reply
// and fail with, and routes nothing.
package hosttest

import (
	"errors"
	"log/slog"
	"time"

	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/engine/memengine"
	"github.com/tenfold/tenfold/tenfoldpb"
	"google.golang.org/protobuf/proto"
)

// Host is node 1 on an in-memory engine.
type Host struct {
	Cfg    host.Config
	Eng    engine.Engine
	Clock  time.Time
	Sent   []*tenfoldpb.Message
	Failed []error
	// Asked are the sequencer requests of data ranges, in order.
	Asked []SeqAsk
}

// SeqAsk is one call of AskSequencer.
type SeqAsk struct {
	RangeID, ID, Count uint64
	Attempt            int
}

// New returns a host with the default configuration.
func New() *Host {
	h := &Host{Cfg: host.Config{NodeID: 1}, Eng: memengine.New(), Clock: time.Unix(1000, 0)}
	h.Cfg.SetDefaults()
	return h
}

// Invariant returns the ID of the first invariant the node stopped with
// ("" if none).
func (h *Host) Invariant() string {
	for _, err := range h.Failed {
		var ie *host.InvariantError
		if errors.As(err, &ie) {
			return ie.ID
		}
	}
	return ""
}

// ID implements host.Host.
func (h *Host) ID() uint64 { return h.Cfg.NodeID }

// Incarnation implements host.Host.
func (h *Host) Incarnation() uint64 { return 1 }

// Config implements host.Host.
func (h *Host) Config() *host.Config { return &h.Cfg }

// Engine implements host.Host.
func (h *Host) Engine() engine.Engine { return h.Eng }

// Now implements host.Host.
func (h *Host) Now() time.Time { return h.Clock }

// Logger implements host.Host.
func (h *Host) Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Send implements host.Host: it records m.
func (h *Host) Send(to uint64, m *tenfoldpb.Message) {
	m.From, m.To = h.ID(), to
	h.Sent = append(h.Sent, m)
}

// Reply implements host.Host: it records the response as a message.
func (h *Host) Reply(req *tenfoldpb.Request, resp proto.Message, err error) {
	r := &tenfoldpb.Response{Id: req.GetId(), Kind: req.GetKind()}
	if err != nil {
		r.Error = err.Error()
	} else if b, merr := proto.Marshal(resp); merr == nil {
		r.Payload = b
	}
	h.Send(req.GetOrigin(), &tenfoldpb.Message{Body: &tenfoldpb.Message_Response{Response: r}})
}

// Fail implements host.Host: it records err.
func (h *Host) Fail(err error) { h.Failed = append(h.Failed, err) }

// Touch implements replica.Host.
func (h *Host) Touch(uint64) {}

// Alive implements replica.Host.
func (h *Host) Alive(uint64) bool { return true }

// LeaderKnown implements replica.Host.
func (h *Host) LeaderKnown(uint64, uint64) {}

// AskSequencer implements datarange.Host: it records the request; the
// sequencer is node 1.
func (h *Host) AskSequencer(rangeID, id, count uint64, attempt int) uint64 {
	h.Asked = append(h.Asked, SeqAsk{RangeID: rangeID, ID: id, Count: count, Attempt: attempt})
	return 1
}

// SetLeaderHint implements datarange.Host and system.Host.
func (h *Host) SetLeaderHint(uint64, uint64) {}

// EmitApplied implements datarange.Host.
func (h *Host) EmitApplied(host.Applied) {}

// DataRanges implements system.Host: none.
func (h *Host) DataRanges() []*tenfoldpb.RangeDescriptor { return nil }

// DirectoryComplete implements system.Host.
func (h *Host) DirectoryComplete() bool { return false }

// RangeDesc implements system.Host.
func (h *Host) RangeDesc(uint64) *tenfoldpb.RangeDescriptor { return nil }

// LeaderHint implements system.Host.
func (h *Host) LeaderHint(uint64) uint64 { return 0 }

// CompactRange implements system.Host: it never answers.
func (h *Host) CompactRange(uint64, int64, time.Time, func(error)) {}
