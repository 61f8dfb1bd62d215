package host

import (
	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// ClusterID is reported in every response header.
const ClusterID = 0x7e7f01d

// Errors the core returns to clients.
var (
	ErrNotLeader     = status.Error(codes.Unavailable, "tenfold: not the range leader")
	ErrNoLeader      = rpctypes.ErrGRPCNoLeader
	ErrTimeout       = rpctypes.ErrGRPCTimeout
	ErrLeaderChanged = status.Error(codes.Unavailable, "tenfold: leader changed before the request was applied; it was not applied, retry")
	ErrOverloaded    = status.Error(codes.ResourceExhausted, "tenfold: range leader overloaded (too many pending requests), retry later")
	ErrRangeNotHere  = status.Error(codes.Unavailable, "tenfold: this node has no replica of the range; range cache refreshed, retry")
	ErrUnknownKind   = status.Error(codes.InvalidArgument, "tenfold: unknown request kind")
)

// DecodeResponse decodes the etcd response of a request of kind.
func DecodeResponse(kind tenfoldpb.RequestKind, b []byte) (proto.Message, error) {
	var m proto.Message
	switch kind {
	case tenfoldpb.RequestKind_RANGE, tenfoldpb.RequestKind_CLOSE:
		m = &pb.RangeResponse{}
	case tenfoldpb.RequestKind_PUT:
		m = &pb.PutResponse{}
	case tenfoldpb.RequestKind_DELETE_RANGE:
		m = &pb.DeleteRangeResponse{}
	case tenfoldpb.RequestKind_TXN:
		m = &pb.TxnResponse{}
	case tenfoldpb.RequestKind_COMPACT:
		m = &pb.CompactionResponse{}
	case tenfoldpb.RequestKind_LEASE_GRANT:
		m = &pb.LeaseGrantResponse{}
	case tenfoldpb.RequestKind_LEASE_REVOKE:
		m = &pb.LeaseRevokeResponse{}
	case tenfoldpb.RequestKind_LEASE_KEEPALIVE:
		m = &pb.LeaseKeepAliveResponse{}
	case tenfoldpb.RequestKind_LEASE_TTL, tenfoldpb.RequestKind_LEASE_KEYS:
		m = &pb.LeaseTimeToLiveResponse{}
	case tenfoldpb.RequestKind_LEASE_LEASES:
		m = &pb.LeaseLeasesResponse{}
	default:
		return nil, ErrUnknownKind
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, status.Errorf(codes.Internal, "tenfold: decode %s response: %v", KindName(kind), err)
	}
	return m, nil
}

// DecodeRequest decodes the etcd request of kind.
func DecodeRequest(kind tenfoldpb.RequestKind, b []byte) (proto.Message, error) {
	var m proto.Message
	switch kind {
	case tenfoldpb.RequestKind_RANGE, tenfoldpb.RequestKind_CLOSE:
		m = &pb.RangeRequest{}
	case tenfoldpb.RequestKind_PUT:
		m = &pb.PutRequest{}
	case tenfoldpb.RequestKind_DELETE_RANGE:
		m = &pb.DeleteRangeRequest{}
	case tenfoldpb.RequestKind_TXN:
		m = &pb.TxnRequest{}
	case tenfoldpb.RequestKind_COMPACT:
		m = &pb.CompactionRequest{}
	case tenfoldpb.RequestKind_LEASE_GRANT:
		m = &pb.LeaseGrantRequest{}
	case tenfoldpb.RequestKind_LEASE_REVOKE:
		m = &pb.LeaseRevokeRequest{}
	case tenfoldpb.RequestKind_LEASE_KEEPALIVE:
		m = &pb.LeaseKeepAliveRequest{}
	case tenfoldpb.RequestKind_LEASE_TTL, tenfoldpb.RequestKind_LEASE_KEYS:
		m = &pb.LeaseTimeToLiveRequest{}
	case tenfoldpb.RequestKind_LEASE_LEASES:
		m = &pb.LeaseLeasesRequest{}
	default:
		return nil, ErrUnknownKind
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "tenfold: decode %s request: %v", KindName(kind), err)
	}
	return m, nil
}

// KindName names a request kind in messages to users.
func KindName(k tenfoldpb.RequestKind) string {
	switch k {
	case tenfoldpb.RequestKind_RANGE:
		return "range read"
	case tenfoldpb.RequestKind_DELETE_RANGE:
		return "delete range"
	case tenfoldpb.RequestKind_TXN:
		return "txn"
	}
	return k.String()
}

// SetHeaderMeta fills the non-revision header fields.
func SetHeaderMeta(resp proto.Message, member, term uint64) {
	var h *pb.ResponseHeader
	switch r := resp.(type) {
	case *pb.PutResponse:
		h = r.Header
	case *pb.DeleteRangeResponse:
		h = r.Header
	case *pb.TxnResponse:
		h = r.Header
	case *pb.CompactionResponse:
		if r.Header == nil {
			r.Header = &pb.ResponseHeader{}
		}
		h = r.Header
	}
	if h != nil {
		h.ClusterId, h.MemberId, h.RaftTerm = ClusterID, member, term
	}
}

// DedupKind reports whether requests of kind k go through the session
// table: the client writes (CLOSE writes nothing and is safe to repeat).
func DedupKind(k tenfoldpb.RequestKind) bool {
	switch k {
	case tenfoldpb.RequestKind_PUT, tenfoldpb.RequestKind_DELETE_RANGE, tenfoldpb.RequestKind_TXN, tenfoldpb.RequestKind_COMPACT:
		return true
	}
	return false
}
