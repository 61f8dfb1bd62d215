package core

import (
	"bytes"

	"github.com/tenfold/tenfold/tenfoldpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RangeStatus is one replica's state, for status reporting.
type RangeStatus struct {
	RangeID    uint64
	Kind       tenfoldpb.RangeKind
	Epoch      uint64
	Start, End []byte
	Replicas   []uint64
	Leader     uint64
	Term       uint64
	Applied    uint64
	Revision   int64 // highest revision this range wrote
	Closed     int64 // resolved: no write at or below it will come
	Compacted  int64
	Quiesced   bool
}

// RangeStatuses reports every replica on this node, by range ID.
func (n *Node) RangeStatuses() []RangeStatus {
	var out []RangeStatus
	if len(n.ids) > 0 {
		out = make([]RangeStatus, 0, len(n.ids))
	}
	for _, id := range n.replicaIDs() {
		r := n.replicas[id]
		out = append(out, RangeStatus{RangeID: id, Kind: r.Desc().GetKind(), Epoch: r.Desc().GetEpoch(), Start: r.Desc().GetStartKey(), End: r.Desc().GetEndKey(),
			Replicas: r.Desc().GetReplicas(), Leader: r.Leader(), Term: r.Term(), Applied: r.Applied().Index,
			Revision: r.Applied().Revision, Closed: r.Applied().Closed, Compacted: r.Applied().Compacted, Quiesced: r.Quiesced()})
	}
	return out
}

// Routable reports whether this node's range cache covers the whole
// keyspace, so a request for any key goes out at once; before, requests for
// ranges it does not know yet wait for the directory (etcd's /readyz
// meaning for a gateway).
func (n *Node) Routable() bool { return n.dir.Complete() }

// Live returns the nodes the control plane considers live (as last told).
func (n *Node) Live() map[uint64]bool {
	if n.ctl != nil {
		m := map[uint64]bool{}
		if n.ctl.IsLeader() {
			for _, id := range n.ctl.LiveNodes() {
				m[id] = true
			}
		}
		return m
	}
	m := make(map[uint64]bool, len(n.dir.Live))
	for k, v := range n.dir.Live {
		m[k] = v
	}
	return m
}

// DirectoryGeneration changes whenever this node's directory does.
func (n *Node) DirectoryGeneration() uint64 { return n.dir.Gen() }

// Directory returns the data ranges this node knows, in key order.
func (n *Node) Directory() []*tenfoldpb.RangeDescriptor {
	return append([]*tenfoldpb.RangeDescriptor(nil), n.dir.DataRanges()...)
}

// WatchTarget is a local replica serving (part of) a watch: its range, and
// the revisions it has resolved and compacted.
type WatchTarget struct {
	RangeID             uint64
	Start, End          []byte // the range's span (End nil: to the end)
	Resolved, Compacted int64
}

// WatchTargets finds the local replicas that serve a watch on the etcd
// interval [key, end): every range the interval touches, in key order,
// with its resolved and compacted revisions. A watch across ranges needs a
// local replica of each (watch.md).
func (n *Node) WatchTargets(key, end []byte) ([]WatchTarget, error) {
	span := EtcdSpan(key, end)
	var out []WatchTarget
	for k := span.Start; ; {
		desc := n.dir.Lookup(k)
		if desc == nil {
			return nil, status.Errorf(codes.Unavailable, "tenfold: no range known for key %q yet, retry", k)
		}
		r, ok := n.replicas[desc.GetRangeId()]
		if !ok {
			return nil, status.Errorf(codes.FailedPrecondition, "tenfold: node %d has no replica of range %d, which the watch covers; watch through a node with a replica of every range the watch covers (range %d: replicas %v)", n.id, desc.GetRangeId(), desc.GetRangeId(), desc.GetReplicas())
		}
		out = append(out, WatchTarget{RangeID: desc.GetRangeId(), Start: desc.GetStartKey(), End: desc.GetEndKey(), Resolved: r.Applied().Closed, Compacted: r.Applied().Compacted})
		e := desc.GetEndKey()
		if len(e) == 0 || (len(span.End) != 0 && bytes.Compare(span.End, e) <= 0) {
			return out, nil
		}
		k = e
	}
}
