// Package gateway serves the etcd v3 gRPC API (KV, Watch, Lease,
// Maintenance, Cluster) on a data node. Every client request enters a node
// here: the gateway validates it (giving etcd's errors for bad input), will
// admit it (admission control sits here), and hands it to the Backend, which
// routes it to the owning range.
package gateway

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Backend executes validated requests. Errors it returns should already be
// gRPC status errors (etcd's rpctypes where etcd has one); the gateway passes
// them through unchanged. The gateway fills in no headers: the backend
// returns complete responses.
type Backend interface {
	Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error)
	Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error)
	DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error)
	Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error)
	Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error)

	LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error)
	LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error)
	// LeaseKeepAlive renews a lease once and returns the response to send.
	LeaseKeepAlive(ctx context.Context, r *pb.LeaseKeepAliveRequest) (*pb.LeaseKeepAliveResponse, error)
	LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error)
	LeaseLeases(ctx context.Context, r *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error)

	// Watch starts one watch. The returned Watch delivers batches until
	// Close, or until it ends with an error (e.g. compacted start revision).
	// A request without a start revision (0) watches from now: the backend
	// settles the start (Watch.Start) before it returns.
	Watch(ctx context.Context, r *pb.WatchCreateRequest) (Watch, error)

	Status(ctx context.Context, r *pb.StatusRequest) (*pb.StatusResponse, error)
	MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error)
	// Header returns a response header for the current store revision;
	// the gateway uses it for watch-created and cancel responses.
	Header(ctx context.Context) (*pb.ResponseHeader, error)
}

// WatchBatch is one delivery of a watch: events all at revisions up to
// Revision, in revision order. A batch without events is a progress
// notification: every event at or below Revision has been delivered.
type WatchBatch struct {
	Events   []*mvccpb.Event
	Revision int64
	// CompactRevision is set (with no events) when the watch's next
	// revision has been compacted; the watch ends after this batch.
	CompactRevision int64
}

// Watch is one running watch.
type Watch interface {
	// Start is the first revision the watch delivers: the request's start
	// revision, or, for a watch without one, one past a revision at or
	// above every write acknowledged before the watch was created (etcd's
	// store revision at creation), which the created response reports.
	Start() int64
	// Batches delivers batches in order; it is closed when the watch ends.
	Batches() <-chan WatchBatch
	// Err says why the watch ended (nil after Close).
	Err() error
	// RequestProgress asks for a progress notification as soon as possible.
	RequestProgress()
	// Close cancels the watch and releases its resources.
	Close()
}
