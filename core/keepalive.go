package core

import (
	"time"

	"github.com/tenfold/tenfold/tenfoldpb"
)

// maybeKeepalive sends this data node's periodic beat to the control leader.
func (n *Node) maybeKeepalive() {
	if n.cfg.Control || len(n.cfg.ControlNodes) == 0 || n.now.Sub(n.lastKeepalive) < n.cfg.KeepaliveInterval {
		return
	}
	n.lastKeepalive = n.now
	to := n.controlLeader
	if to == 0 {
		to = n.cfg.ControlNodes[int(n.ticks)%len(n.cfg.ControlNodes)]
	}
	ka := &tenfoldpb.Keepalive{Node: n.cfg.Self, DirectoryVersion: n.dir.Version, LiveVersion: n.dir.LiveVersion}
	if ka.Node == nil {
		ka.Node = &tenfoldpb.NodeInfo{NodeId: n.id, StoreId: n.storeID}
	}
	for _, id := range n.replicaIDs() {
		r := n.replicas[id]
		ka.Ranges = append(ka.Ranges, &tenfoldpb.RangeReport{RangeId: id, Epoch: r.Desc().GetEpoch(), Leader: r.Leader(), Term: r.Term(), Applied: r.Applied().Index, Revision: r.Applied().Closed})
	}
	n.send(to, &tenfoldpb.Message{Body: &tenfoldpb.Message_Keepalive{Keepalive: ka}})
}

func (n *Node) handleKeepaliveResponse(from uint64, resp *tenfoldpb.KeepaliveResponse) {
	if resp.GetCode() != 0 {
		n.controlLeader = resp.GetControlLeader()
		n.lastKeepalive = time.Time{} // try the hinted leader right away
		return
	}
	n.controlLeader = from
	if len(resp.GetRanges()) > 0 || len(resp.GetNodes()) > 0 {
		n.dir.Reserve(len(resp.GetRanges()))
		for _, d := range resp.GetRanges() {
			n.dir.Update(d)
		}
		for _, ni := range resp.GetNodes() {
			n.dir.Nodes[ni.GetNodeId()] = ni
			n.learnPeerStore(ni.GetNodeId(), ni.GetStoreId(), true)
		}
		n.dir.Version = resp.GetDirectoryVersion()
		n.router.RouteWaiting()
	}
	if resp.GetLiveVersion() == 0 || resp.GetLiveVersion() != n.dir.LiveVersion {
		// A new live set (a control plane that does not version it sends
		// the list every time).
		n.dir.Live = map[uint64]bool{}
		for _, id := range resp.GetLive() {
			n.dir.Live[id] = true
		}
		n.dir.LiveVersion = resp.GetLiveVersion()
	}
}

// Nodes returns the registered nodes this node knows of (from the
// directory), for the driver's address book.
func (n *Node) Nodes() []*tenfoldpb.NodeInfo {
	if n.ctl != nil {
		return n.ctl.Nodes()
	}
	out := make([]*tenfoldpb.NodeInfo, 0, len(n.dir.Nodes))
	for _, id := range sortedKeys(n.dir.Nodes) {
		out = append(out, n.dir.Nodes[id])
	}
	return out
}
