package gateway

import (
	"context"
	"errors"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/status"
)

// leaseServer serves etcdserverpb.Lease.
type leaseServer struct {
	pb.UnimplementedLeaseServer
	b Backend
}

// LeaseGrant validates the TTL and grants a lease.
func (s *leaseServer) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if err := checkLeaseGrant(r); err != nil {
		return nil, err
	}
	resp, err := s.b.LeaseGrant(ctx, r)
	return resp, toGRPCError(err)
}

// LeaseRevoke revokes a lease and deletes its keys.
func (s *leaseServer) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	resp, err := s.b.LeaseRevoke(ctx, r)
	return resp, toGRPCError(err)
}

// LeaseTimeToLive reports a lease's remaining TTL. A lease that does not
// exist is answered with TTL -1 rather than an error, as etcd does
// (clientv3 and etcdctl read -1 as "expired or revoked").
func (s *leaseServer) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	resp, err := s.b.LeaseTimeToLive(ctx, r)
	if isStatus(err, rpctypes.ErrGRPCLeaseNotFound) {
		hdr, herr := s.b.Header(ctx)
		if herr != nil {
			return nil, toGRPCError(herr)
		}
		return &pb.LeaseTimeToLiveResponse{Header: hdr, ID: r.GetID(), TTL: -1}, nil
	}
	return resp, toGRPCError(err)
}

// LeaseLeases lists the leases.
func (s *leaseServer) LeaseLeases(ctx context.Context, r *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	resp, err := s.b.LeaseLeases(ctx, r)
	return resp, toGRPCError(err)
}

// LeaseKeepAlive renews leases for as long as the client streams requests.
// Requests are served one at a time, in order, so a slow backend slows the
// client down instead of piling up renewals here. A lease that does not
// exist is answered with TTL 0 rather than an error, as etcd does: clientv3
// reads TTL <= 0 as "expired" and stops keeping it alive, while an error
// would end the stream for every other lease on it.
func (s *leaseServer) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	ctx := stream.Context()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := s.b.LeaseKeepAlive(ctx, req)
		if isStatus(err, rpctypes.ErrGRPCLeaseNotFound) {
			hdr, herr := s.b.Header(ctx)
			if herr != nil {
				return toGRPCError(herr)
			}
			resp, err = &pb.LeaseKeepAliveResponse{Header: hdr, ID: req.GetID(), TTL: 0}, nil
		}
		if err != nil {
			return toGRPCError(err)
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// isStatus says whether err is the gRPC status error target (same code and
// message), however it was built.
func isStatus(err, target error) bool {
	if err == nil {
		return false
	}
	got, ok := status.FromError(err)
	if !ok {
		return false
	}
	want := status.Convert(target)
	return got.Code() == want.Code() && got.Message() == want.Message()
}
