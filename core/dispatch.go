package core

import (
	"github.com/tenfold/tenfold/core/datarange"
	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/core/keys"
	"github.com/tenfold/tenfold/core/system"
	"github.com/tenfold/tenfold/tenfoldpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The node's message handlers that deliver to the state machines of its
// replicas, and the node's side of the sequencer (a data range's requests
// for revisions go out, and their answers come in, through the node).

// handleRequest serves a request at a replica of its range.
func (n *Node) handleRequest(from uint64, req *tenfoldpb.Request) {
	r, ok := n.replicas[req.GetRangeId()]
	if !ok {
		n.reply(req, nil, host.ErrRangeNotHere)
		return
	}
	r.Unquiesce()
	r.Machine().Handle(req)
}

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

// askSequencer sends a SeqRequest for rangeID to the sequencer leader and
// returns the node it went to (0: none known yet). attempt counts earlier
// sends of the same request: without a leader hint, each goes to the next
// replica.
func (n *Node) askSequencer(rangeID, id, count uint64, attempt int) uint64 {
	target := n.router.Hint(keys.SystemRangeID)
	if target == 0 {
		if d := n.dir.System(); d != nil && len(d.GetReplicas()) > 0 {
			target = d.GetReplicas()[(int(id)+attempt)%len(d.GetReplicas())]
		}
	}
	if target == 0 {
		return 0 // no system range known yet; the data range retries on tick
	}
	n.send(target, &tenfoldpb.Message{Body: &tenfoldpb.Message_SeqRequest{SeqRequest: &tenfoldpb.SeqRequest{Id: id, RangeId: rangeID, Count: count, Linearizable: true, Incarnation: n.incarnation}}})
	return target
}

func (n *Node) handleSeqRequest(from uint64, req *tenfoldpb.SeqRequest) {
	r, ok := n.replicas[keys.SystemRangeID]
	if !ok || !r.IsLeader() {
		var hint uint64
		if ok {
			hint = r.Leader()
		}
		n.send(from, &tenfoldpb.Message{Body: &tenfoldpb.Message_SeqResponse{SeqResponse: &tenfoldpb.SeqResponse{Id: req.GetId(), RangeId: req.GetRangeId(), Code: uint32(codes.Unavailable), Error: status.Convert(host.ErrNotLeader).Message(), LeaderHint: hint, Incarnation: req.GetIncarnation()}}})
		return
	}
	r.Unquiesce()
	r.Machine().(*system.Range).SeqRequest(from, req)
}

func (n *Node) handleSeqResponse(from uint64, resp *tenfoldpb.SeqResponse) {
	if resp.GetCode() != 0 {
		if h := resp.GetLeaderHint(); h != 0 {
			n.router.SetHint(keys.SystemRangeID, h)
			if d := n.dataRange(resp.GetRangeId()); d != nil && h != from {
				d.SeqRedirected(from, resp)
			}
		}
		return // otherwise the data range asks again on its next tick
	}
	if d := n.dataRange(resp.GetRangeId()); d != nil {
		if d.SeqGranted(from, resp) {
			n.router.SetHint(keys.SystemRangeID, from)
		}
	}
}

func (n *Node) handleLeaseRevokedAck(from uint64, m *tenfoldpb.LeaseRevokedAck) {
	if _, s := n.systemRange(); s != nil {
		s.LeaseRevokedAck(from, m)
	}
}
