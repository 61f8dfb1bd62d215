package gateway

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maintenanceServer serves etcdserverpb.Maintenance. Only Status maps onto
// tenfold; the other methods act on one etcd member's database (defragment,
// hash, snapshot) or its raft group (move leader, downgrade), which have no
// single counterpart in a range-sharded store, so they say so explicitly.
type maintenanceServer struct {
	pb.UnimplementedMaintenanceServer
	b Backend
}

// unimplemented is the error for an etcd method tenfold does not offer,
// naming the method and saying why.
func unimplemented(method, why string) error {
	return status.Errorf(codes.Unimplemented, "tenfold: %s is not supported: %s", method, why)
}

const (
	whyPerMember  = "it acts on one etcd member's storage, and tenfold's data is spread over ranges on many nodes"
	whyMembership = "membership is managed by the tenfold control plane"
)

// Status reports this node's status.
func (s *maintenanceServer) Status(ctx context.Context, r *pb.StatusRequest) (*pb.StatusResponse, error) {
	resp, err := s.b.Status(ctx, r)
	return resp, toGRPCError(err)
}

// Alarm answers GET with an empty list, because tenfold raises no etcd
// alarms (etcdctl's "endpoint health" lists alarms and would otherwise
// report every node unhealthy); activating or clearing alarms is not
// supported.
func (s *maintenanceServer) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	if r.GetAction() != pb.AlarmRequest_GET {
		return nil, unimplemented("Maintenance.Alarm "+r.GetAction().String(), "tenfold raises no etcd alarms")
	}
	hdr, err := s.b.Header(ctx)
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.AlarmResponse{Header: hdr}, nil
}

// Defragment is not supported.
func (s *maintenanceServer) Defragment(context.Context, *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	return nil, unimplemented("Maintenance.Defragment", whyPerMember)
}

// Hash is not supported.
func (s *maintenanceServer) Hash(context.Context, *pb.HashRequest) (*pb.HashResponse, error) {
	return nil, unimplemented("Maintenance.Hash", whyPerMember)
}

// HashKV is not supported.
func (s *maintenanceServer) HashKV(context.Context, *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	return nil, unimplemented("Maintenance.HashKV", whyPerMember)
}

// Snapshot is not supported.
func (s *maintenanceServer) Snapshot(*pb.SnapshotRequest, pb.Maintenance_SnapshotServer) error {
	return unimplemented("Maintenance.Snapshot", whyPerMember)
}

// MoveLeader is not supported.
func (s *maintenanceServer) MoveLeader(context.Context, *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	return nil, unimplemented("Maintenance.MoveLeader", "each range has its own raft leader, placed by the tenfold control plane")
}

// Downgrade is not supported.
func (s *maintenanceServer) Downgrade(context.Context, *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	return nil, unimplemented("Maintenance.Downgrade", "tenfold versions are not etcd cluster versions")
}

// clusterServer serves etcdserverpb.Cluster: members can be listed, but
// changes go through the tenfold control plane, not the etcd API.
type clusterServer struct {
	pb.UnimplementedClusterServer
	b Backend
}

// MemberList lists the members the backend reports.
func (s *clusterServer) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	resp, err := s.b.MemberList(ctx, r)
	return resp, toGRPCError(err)
}

// MemberAdd is not supported.
func (s *clusterServer) MemberAdd(context.Context, *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	return nil, unimplemented("Cluster.MemberAdd", whyMembership)
}

// MemberRemove is not supported.
func (s *clusterServer) MemberRemove(context.Context, *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	return nil, unimplemented("Cluster.MemberRemove", whyMembership)
}

// MemberUpdate is not supported.
func (s *clusterServer) MemberUpdate(context.Context, *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	return nil, unimplemented("Cluster.MemberUpdate", whyMembership)
}

// MemberPromote is not supported.
func (s *clusterServer) MemberPromote(context.Context, *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	return nil, unimplemented("Cluster.MemberPromote", whyMembership)
}
