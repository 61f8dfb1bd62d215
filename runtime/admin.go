package runtime

import (
	"context"

	"github.com/tenfold/tenfold/tenfoldpb"
)

// adminServer serves tenfold's own status next to the etcd API.
type adminServer struct {
	tenfoldpb.UnimplementedAdminServer
	n *Node
}

// ClusterStatus implements tenfoldpb.AdminServer from the node's latest
// status snapshot (refreshed twice a second by the loop).
func (a *adminServer) ClusterStatus(ctx context.Context, _ *tenfoldpb.ClusterStatusRequest) (*tenfoldpb.ClusterStatusResponse, error) {
	s := a.n.Status()
	resp := &tenfoldpb.ClusterStatusResponse{NodeId: a.n.cfg.NodeID}
	if s == nil {
		return resp, nil
	}
	resp.Nodes, resp.Revision = s.Nodes, s.Revision
	for _, ni := range s.Nodes {
		if s.Live[ni.GetNodeId()] {
			resp.Live = append(resp.Live, ni.GetNodeId())
		}
	}
	for _, r := range s.Ranges {
		resp.Replicas = append(resp.Replicas, &tenfoldpb.ReplicaStatus{RangeId: r.RangeID, Kind: r.Kind, Epoch: r.Epoch, StartKey: r.Start, EndKey: r.End,
			Replicas: r.Replicas, Leader: r.Leader, Term: r.Term, Applied: r.Applied, Revision: r.Revision, Closed: r.Closed, Compacted: r.Compacted})
	}
	return resp, nil
}
