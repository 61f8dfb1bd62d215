package gateway

import (
	"context"
	"errors"
	"math"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Defaults for Config; each one is etcd's, so that clients tuned for etcd
// meet the same limits here.
const (
	// DefaultMaxRequestBytes is etcd's --max-request-bytes default (1.5 MiB).
	DefaultMaxRequestBytes = 1536 * 1024
	// DefaultMaxTxnOps is etcd's --max-txn-ops default.
	DefaultMaxTxnOps = 128
	// DefaultProgressNotifyInterval is etcd's interval for the periodic
	// progress notifications of watches created with progress_notify.
	DefaultProgressNotifyInterval = 10 * time.Minute
	// DefaultWatchSendQueueLen bounds the responses queued for one watch
	// stream; when it is full, the stream's watches stop draining their
	// backend channels, so a slow client pushes back on the backend instead
	// of growing memory here.
	DefaultWatchSendQueueLen = 128

	// grpcOverheadBytes is the slack etcd allows above MaxRequestBytes in
	// the gRPC receive limit, so that a request slightly over the limit gets
	// etcd's "request is too large" error rather than gRPC's
	// ResourceExhausted.
	grpcOverheadBytes = 512 * 1024

	// maxLeaseTTLSeconds is etcd's lease.MaxLeaseTTL: larger TTLs are
	// rejected with ErrGRPCLeaseTTLTooLarge.
	maxLeaseTTLSeconds = 9000000000
)

// Config holds the gateway's limits. The zero value of every field means
// its default.
type Config struct {
	// MaxRequestBytes bounds the marshalled size of a write request (Put,
	// DeleteRange, a Txn that writes); larger ones get
	// ErrGRPCRequestTooLarge. Default DefaultMaxRequestBytes.
	MaxRequestBytes int
	// MaxTxnOps bounds the number of compares, and of operations in each
	// branch, of a Txn (nested txns share the remaining budget, as in
	// etcd). Default DefaultMaxTxnOps.
	MaxTxnOps int
	// ProgressNotifyInterval is how often watches created with
	// progress_notify get a progress notification when they have had no
	// events. Default DefaultProgressNotifyInterval.
	ProgressNotifyInterval time.Duration
	// WatchSendQueueLen bounds the responses waiting to be sent on one
	// watch stream. Default DefaultWatchSendQueueLen.
	WatchSendQueueLen int
}

// withDefaults returns cfg with every zero field set to its default.
func (cfg Config) withDefaults() Config {
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.MaxTxnOps <= 0 {
		cfg.MaxTxnOps = DefaultMaxTxnOps
	}
	if cfg.ProgressNotifyInterval <= 0 {
		cfg.ProgressNotifyInterval = DefaultProgressNotifyInterval
	}
	if cfg.WatchSendQueueLen <= 0 {
		cfg.WatchSendQueueLen = DefaultWatchSendQueueLen
	}
	return cfg
}

// ServerOptions returns the gRPC server options the gateway's limits need:
// the receive limit is MaxRequestBytes plus etcd's 512 KiB of slack (so the
// gateway, not gRPC, answers "request is too large" for requests a little
// over the limit), sends are bounded only by gRPC's maximum (a range
// response may be large, as in etcd), and streams per connection are not
// limited, since clientv3 multiplexes every watch and keepalive stream over
// one connection.
func ServerOptions(cfg Config) []grpc.ServerOption {
	cfg = cfg.withDefaults()
	recv := cfg.MaxRequestBytes + grpcOverheadBytes
	if recv < 0 || recv > math.MaxInt32 {
		recv = math.MaxInt32
	}
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(recv),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(math.MaxUint32),
	}
}

// Register registers the KV, Watch, Lease, Maintenance and Cluster services
// on s, all served by b. Auth is not registered: tenfold has no etcd-style
// auth, and gRPC answers Unimplemented for unknown services.
func Register(s *grpc.Server, b Backend, cfg Config) {
	cfg = cfg.withDefaults()
	pb.RegisterKVServer(s, &kvServer{b: b, cfg: cfg})
	pb.RegisterWatchServer(s, &watchServer{b: b, cfg: cfg})
	pb.RegisterLeaseServer(s, &leaseServer{b: b})
	pb.RegisterMaintenanceServer(s, &maintenanceServer{b: b})
	pb.RegisterClusterServer(s, &clusterServer{b: b})
}

// toGRPCError passes status errors through and turns context errors into
// etcd's canceled / deadline errors; a plain error would otherwise reach
// the client as codes.Unknown.
func toGRPCError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return rpctypes.ErrGRPCCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return rpctypes.ErrGRPCDeadlineExceeded
	}
	return err
}
