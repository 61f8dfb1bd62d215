package runtime

import (
	"context"
	"strconv"
	"time"

	"github.com/tenfold/tenfold/core"
	"github.com/tenfold/tenfold/gateway"
	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

var errStopping = status.Error(codes.Unavailable, "tenfold: node is stopping")

// defaultRequestTimeout bounds a request whose context has no deadline.
const defaultRequestTimeout = 10 * time.Second

// Version is reported by Maintenance.Status.
const Version = "3.7.0-tenfold"

// backend implements gateway.Backend by submitting requests to the core.
type backend struct{ n *Node }

func (b *backend) call(ctx context.Context, kind tenfoldpb.RequestKind, msg proto.Message) (proto.Message, error) {
	n := b.n
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultRequestTimeout)
	}
	// The ID only keys this process's waiter; it restarts with the process
	// and never travels: the core gives the request its own wire ID, paired
	// with the node's incarnation, and matches replies on that.
	id := n.nextID.Add(1)
	ch := make(chan core.Result, 1)
	n.inFlight.Add(1)
	defer n.inFlight.Add(-1)
	if err := n.do(ctx, func() {
		n.waiters[id] = ch
		n.core.Submit(core.ClientRequest{ID: id, Kind: kind, Msg: msg, Deadline: deadline})
	}); err != nil {
		return nil, toStatus(err)
	}
	select {
	case r := <-ch:
		return r.Resp, r.Err
	case <-ctx.Done():
		// The core expires the request at its deadline; drop our waiter.
		_ = n.do(context.Background(), func() { delete(n.waiters, id) })
		return nil, toStatus(ctx.Err())
	case <-n.stop:
		return nil, errStopping
	}
}

func toStatus(err error) error {
	switch err {
	case context.DeadlineExceeded:
		return rpctypes.ErrGRPCTimeout
	case context.Canceled:
		return status.Error(codes.Canceled, "context canceled")
	}
	return err
}

func (b *backend) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	m, err := b.call(ctx, tenfoldpb.RequestKind_RANGE, r)
	if err != nil {
		return nil, err
	}
	return m.(*pb.RangeResponse), nil
}

func (b *backend) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := b.checkLease(ctx, r.Lease); err != nil {
		return nil, err
	}
	m, err := b.call(ctx, tenfoldpb.RequestKind_PUT, r)
	if err != nil {
		return nil, err
	}
	return m.(*pb.PutResponse), nil
}

// checkLease refuses a put with a lease that was never granted (or whose
// revoke finished), as etcd does. Atomicity with a revoke does not rest on
// this check: the data range refuses a put with a lease whose keys it
// deleted for the revoke, and a put it applies before that deletion is
// deleted by it (docs/leases.md). This check only answers "lease not found"
// for IDs no data range has heard of.
func (b *backend) checkLease(ctx context.Context, id int64) error {
	if id == 0 {
		return nil
	}
	resp, err := b.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: id})
	if err != nil {
		return err
	}
	if resp.TTL == -1 {
		return rpctypes.ErrGRPCLeaseNotFound
	}
	return nil
}

func (b *backend) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	m, err := b.call(ctx, tenfoldpb.RequestKind_DELETE_RANGE, r)
	if err != nil {
		return nil, err
	}
	return m.(*pb.DeleteRangeResponse), nil
}

func (b *backend) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if p := op.GetRequestPut(); p != nil {
				if err := b.checkLease(ctx, p.Lease); err != nil {
					return nil, err
				}
			}
		}
	}
	m, err := b.call(ctx, tenfoldpb.RequestKind_TXN, r)
	if err != nil {
		return nil, err
	}
	return m.(*pb.TxnResponse), nil
}

func (b *backend) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	m, err := b.call(ctx, tenfoldpb.RequestKind_COMPACT, r)
	if err != nil {
		return nil, err
	}
	resp := m.(*pb.CompactionResponse)
	if resp.Header == nil {
		resp.Header = &pb.ResponseHeader{}
	}
	return resp, nil
}

func (b *backend) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	m, err := b.call(ctx, tenfoldpb.RequestKind_LEASE_GRANT, r)
	if err != nil {
		return nil, err
	}
	return m.(*pb.LeaseGrantResponse), nil
}

func (b *backend) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	m, err := b.call(ctx, tenfoldpb.RequestKind_LEASE_REVOKE, r)
	if err != nil {
		return nil, err
	}
	return m.(*pb.LeaseRevokeResponse), nil
}

func (b *backend) LeaseKeepAlive(ctx context.Context, r *pb.LeaseKeepAliveRequest) (*pb.LeaseKeepAliveResponse, error) {
	m, err := b.call(ctx, tenfoldpb.RequestKind_LEASE_KEEPALIVE, r)
	if err != nil {
		return nil, err
	}
	return m.(*pb.LeaseKeepAliveResponse), nil
}

func (b *backend) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	m, err := b.call(ctx, tenfoldpb.RequestKind_LEASE_TTL, &pb.LeaseTimeToLiveRequest{ID: r.ID})
	if err != nil {
		return nil, err
	}
	resp := m.(*pb.LeaseTimeToLiveResponse)
	if r.Keys && resp.TTL != -1 {
		// The keys live in the data ranges: ask every one (a linearizable
		// read each), after the lease was found.
		k, err := b.call(ctx, tenfoldpb.RequestKind_LEASE_KEYS, &pb.LeaseTimeToLiveRequest{ID: r.ID})
		if err != nil {
			return nil, err
		}
		resp.Keys = k.(*pb.LeaseTimeToLiveResponse).Keys
	}
	return resp, nil
}

func (b *backend) LeaseLeases(ctx context.Context, r *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	m, err := b.call(ctx, tenfoldpb.RequestKind_LEASE_LEASES, r)
	if err != nil {
		return nil, err
	}
	return m.(*pb.LeaseLeasesResponse), nil
}

func (b *backend) Watch(ctx context.Context, r *pb.WatchCreateRequest) (gateway.Watch, error) {
	return b.n.hub.create(ctx, r)
}

// Header is the header of watch responses that carry no revision of their
// own (cancels, a progress answer with no watches, created responses of
// watches with a start revision): the lowest resolved revision of the
// node's data replicas, read from the core now (every event at or below it
// has been applied here). It is a local view, so it may lag behind
// acknowledged writes; a watch from now does not start from it (the watch
// hub settles its start with a CLOSE through the core).
func (b *backend) Header(ctx context.Context) (*pb.ResponseHeader, error) {
	h := &pb.ResponseHeader{ClusterId: core.ClusterID, MemberId: b.n.cfg.NodeID}
	err := b.n.do(ctx, func() {
		first := true
		for _, rs := range b.n.core.RangeStatuses() {
			if rs.Kind == tenfoldpb.RangeKind_DATA && (first || rs.Closed < h.Revision) {
				h.Revision, first = rs.Closed, false
			}
		}
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return h, nil
}

func (b *backend) Status(ctx context.Context, r *pb.StatusRequest) (*pb.StatusResponse, error) {
	s := b.n.Status()
	resp := &pb.StatusResponse{Header: &pb.ResponseHeader{ClusterId: core.ClusterID, MemberId: b.n.cfg.NodeID}, Version: Version, StorageVersion: "tenfold-1"}
	if s == nil {
		return resp, nil
	}
	resp.Header.Revision = s.Revision
	if !s.Control && !s.Routable {
		resp.Errors = append(resp.Errors, "tenfold: range directory not received yet: requests for ranges this node does not know wait for it (not ready)")
	}
	// etcd tools divide by DbSize; report the engine's real disk usage.
	resp.DbSize = int64(s.DiskBytes)
	resp.DbSizeInUse = resp.DbSize
	for _, rs := range s.Ranges {
		if rs.Kind == tenfoldpb.RangeKind_DATA {
			// etcd reports one raft group; report the first data range's.
			resp.Leader, resp.RaftTerm, resp.RaftIndex, resp.RaftAppliedIndex = rs.Leader, rs.Term, rs.Applied, rs.Applied
			resp.Header.RaftTerm = rs.Term
			break
		}
	}
	return resp, nil
}

func (b *backend) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	s := b.n.Status()
	resp := &pb.MemberListResponse{Header: &pb.ResponseHeader{ClusterId: core.ClusterID, MemberId: b.n.cfg.NodeID}}
	if s == nil {
		return resp, nil
	}
	resp.Header.Revision = s.Revision
	// The node registry does not record who serves TLS: a cluster is
	// assumed to be configured alike, so this node's schemes stand for all.
	clientScheme, peerScheme := "http://", "http://"
	if b.n.clientTLS != nil {
		clientScheme = "https://"
	}
	if b.n.peerTLS != nil {
		peerScheme = "https://"
	}
	for _, ni := range s.Nodes {
		if ni.GetControl() || ni.GetClientAddr() == "" {
			continue
		}
		resp.Members = append(resp.Members, &pb.Member{ID: ni.GetNodeId(), Name: nodeName(ni.GetNodeId()),
			PeerURLs: []string{peerScheme + ni.GetAddr()}, ClientURLs: []string{clientScheme + ni.GetClientAddr()}})
	}
	return resp, nil
}

func nodeName(id uint64) string { return "tenfold-" + strconv.FormatUint(id, 10) }
