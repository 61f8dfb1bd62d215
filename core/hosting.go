package core

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/tenfold/tenfold/core/datarange"
	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/core/keys"
	"github.com/tenfold/tenfold/core/replica"
	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/tenfoldpb"
	"google.golang.org/protobuf/proto"
)

// openReplica opens the replica of range d and attaches the state machine
// its kind runs.
func (n *Node) openReplica(d *tenfoldpb.RangeDescriptor) (*replica.Replica, error) {
	r, err := replica.Open(n.host(), d)
	if err != nil {
		return nil, err
	}
	switch d.GetKind() {
	case tenfoldpb.RangeKind_DATA:
		data, err := datarange.New(n.host(), r)
		if err != nil {
			return nil, fmt.Errorf("range %d: %w", d.GetRangeId(), err)
		}
		r.SetMachine(data)
	case tenfoldpb.RangeKind_SYSTEM:
		s, err := newSystemState(n, r)
		if err != nil {
			return nil, err
		}
		r.SetMachine(s)
	case tenfoldpb.RangeKind_CONTROL:
		if n.ctl == nil {
			n.ctl = newControlState(n)
		}
		if err := n.ctl.load(); err != nil {
			return nil, err
		}
		r.SetMachine(controlMachine{n.ctl})
	default:
		return nil, fmt.Errorf("range %d: unknown range kind %v", d.GetRangeId(), d.GetKind())
	}
	return r, nil
}

// dataRange returns the data range state machine of a local replica (nil
// if the node has no replica of rangeID, or it is not a data range).
func (n *Node) dataRange(rangeID uint64) *datarange.Range {
	if r, ok := n.replicas[rangeID]; ok {
		d, _ := r.Machine().(*datarange.Range)
		return d
	}
	return nil
}

// systemRange returns the local system range replica and its state
// machine (nil, nil if the node has none).
func (n *Node) systemRange() (*replica.Replica, *systemState) {
	if r, ok := n.replicas[keys.SystemRangeID]; ok {
		s, _ := r.Machine().(*systemState)
		return r, s
	}
	return nil, nil
}

// nodeHost is the node as the host of its replicas and their state
// machines (host.Host and the narrower interfaces each package defines):
// a separate method set, so that the driver's API on Node stays small.
type nodeHost Node

func (n *Node) host() *nodeHost { return (*nodeHost)(n) }

func (h *nodeHost) node() *Node                          { return (*Node)(h) }
func (h *nodeHost) ID() uint64                           { return h.id }
func (h *nodeHost) Incarnation() uint64                  { return h.incarnation }
func (h *nodeHost) Config() *host.Config                 { return &h.cfg }
func (h *nodeHost) Engine() engine.Engine                { return h.eng }
func (h *nodeHost) Now() time.Time                       { return h.now }
func (h *nodeHost) Logger() *slog.Logger                 { return h.logger }
func (h *nodeHost) Send(to uint64, m *tenfoldpb.Message) { h.node().send(to, m) }
func (h *nodeHost) Fail(err error)                       { h.node().fail(err) }
func (h *nodeHost) Touch(rangeID uint64)                 { h.dirty[rangeID] = true }
func (h *nodeHost) Alive(node uint64) bool               { return h.node().alive(node) }
func (h *nodeHost) Reply(req *tenfoldpb.Request, resp proto.Message, err error) {
	h.node().reply(req, resp, err)
}

// LeaderKnown records a range's leader and sends the requests that wait
// to retry on that range at once.
func (h *nodeHost) LeaderKnown(rangeID, leader uint64) {
	h.leaderHint[rangeID] = leader
	h.client.leaderKnown(rangeID)
}

// AskSequencer sends a data range's request for revisions.
func (h *nodeHost) AskSequencer(rangeID, id, count uint64) uint64 {
	return h.node().askSequencer(rangeID, id, count)
}

// SetLeaderHint records (or, with 0, forgets) a range's leader node.
func (h *nodeHost) SetLeaderHint(rangeID, node uint64) { h.leaderHint[rangeID] = node }

// EmitApplied adds a range's progress to the round's output.
func (h *nodeHost) EmitApplied(a host.Applied) { h.out.Applied = append(h.out.Applied, a) }

// handleLeaseRevoked queues the deletion of a revoked lease's keys.
func (n *Node) handleLeaseRevoked(from uint64, m *tenfoldpb.LeaseRevoked) {
	r, ok := n.replicas[m.GetRangeId()]
	d, isData := (*datarange.Range)(nil), false
	if ok {
		d, isData = r.Machine().(*datarange.Range)
	}
	if !isData || !r.IsLeader() {
		// Say so, with the leader we know: the system leader may host no
		// replica of this range and learn its leader only from us.
		var hint uint64
		if ok {
			hint = r.Leader()
		}
		n.send(from, &tenfoldpb.Message{Body: &tenfoldpb.Message_LeaseRevokedAck{LeaseRevokedAck: &tenfoldpb.LeaseRevokedAck{
			Lease: m.GetLease(), RangeId: m.GetRangeId(), NotLeader: true, LeaderHint: hint}}})
		return
	}
	r.Unquiesce()
	d.LeaseRevoked(from, m.GetLease())
}
