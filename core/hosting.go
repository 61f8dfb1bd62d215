package core

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/tenfold/tenfold/core/control"
	"github.com/tenfold/tenfold/core/datarange"
	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/core/keys"
	"github.com/tenfold/tenfold/core/replica"
	"github.com/tenfold/tenfold/core/route"
	"github.com/tenfold/tenfold/core/system"
	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
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
		s, err := system.New(n.host(), r)
		if err != nil {
			return nil, err
		}
		r.SetMachine(s)
	case tenfoldpb.RangeKind_CONTROL:
		if n.ctl == nil {
			n.ctl = control.New(n.host())
		}
		if err := n.ctl.Load(); err != nil {
			return nil, err
		}
		r.SetMachine(n.ctl.Attach(r))
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
func (n *Node) systemRange() (*replica.Replica, *system.Range) {
	if r, ok := n.replicas[keys.SystemRangeID]; ok {
		s, _ := r.Machine().(*system.Range)
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
	h.router.SetHint(rangeID, leader)
	h.router.LeaderKnown(rangeID)
}

// AskSequencer sends a data range's request for revisions.
func (h *nodeHost) AskSequencer(rangeID, id, count uint64, attempt int) uint64 {
	return h.node().askSequencer(rangeID, id, count, attempt)
}

// SetLeaderHint records (or, with 0, forgets) a range's leader node.
func (h *nodeHost) SetLeaderHint(rangeID, node uint64) { h.router.SetHint(rangeID, node) }

// EmitApplied adds a range's progress to the round's output.
func (h *nodeHost) EmitApplied(a host.Applied) { h.out.Applied = append(h.out.Applied, a) }

// DataRanges returns the data ranges of the range cache, in key order.
func (h *nodeHost) DataRanges() []*tenfoldpb.RangeDescriptor { return h.dir.DataRanges() }

// DirectoryComplete reports whether the range cache covers the keyspace.
func (h *nodeHost) DirectoryComplete() bool { return h.dir.Complete() }

// RangeDesc returns a range's descriptor from the range cache.
func (h *nodeHost) RangeDesc(rangeID uint64) *tenfoldpb.RangeDescriptor { return h.dir.Desc(rangeID) }

// LeaderHint returns the last known leader of a range.
func (h *nodeHost) LeaderHint(rangeID uint64) uint64 { return h.router.Hint(rangeID) }

// CompactRange sends a data range its part of a compaction decision, as
// a request of the node's own (routed and retried like a client's).
func (h *nodeHost) CompactRange(rangeID uint64, rev int64, deadline time.Time, done func(error)) {
	h.router.SubmitInternal(ClientRequest{Kind: tenfoldpb.RequestKind_COMPACT, Msg: &pb.CompactionRequest{Revision: rev},
		Deadline: deadline, RangeID: rangeID}, true, func(_ proto.Message, err error) { done(err) })
}

// LearnPeerStore records a node's registered store ID.
func (h *nodeHost) LearnPeerStore(node, store uint64) { h.node().learnPeerStore(node, store, true) }

// Result hands the end of a client request to the driver.
func (h *nodeHost) Result(r route.Result) { h.out.Results = append(h.out.Results, r) }

// HasReplica reports whether the node hosts a replica of a range.
func (h *nodeHost) HasReplica(rangeID uint64) bool {
	_, ok := h.replicas[rangeID]
	return ok
}
