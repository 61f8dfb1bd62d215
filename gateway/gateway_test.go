package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// testTimeout bounds every test's wait on the network; all traffic is on
// 127.0.0.1.
const testTimeout = 10 * time.Second

// startServer serves the gateway over b on a fresh loopback port.
func startServer(t *testing.T, b Backend, cfg Config) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(ServerOptions(cfg)...)
	Register(s, b, cfg)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = s.Serve(lis)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-served
	})
	return lis.Addr().String()
}

// newClient is a real etcd client for addr.
func newClient(t *testing.T, addr string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{addr},
		DialTimeout: testTimeout,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// newConn is a plain gRPC connection, for requests clientv3 cannot build.
func newConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func TestKVThroughClient(t *testing.T) {
	b := newFakeBackend()
	cli := newClient(t, startServer(t, b, Config{}))
	ctx := testContext(t)

	put, err := cli.Put(ctx, "a", "1")
	if err != nil {
		t.Fatal(err)
	}
	rev1 := put.Header.Revision
	get, err := cli.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(get.Kvs) != 1 || string(get.Kvs[0].Value) != "1" || get.Kvs[0].ModRevision != rev1 {
		t.Fatalf("get a = %v, want value 1 at revision %d", get.Kvs, rev1)
	}

	for _, k := range []string{"p/1", "p/2", "q"} {
		if _, err := cli.Put(ctx, k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	pre, err := cli.Get(ctx, "p/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if pre.Count != 2 || string(pre.Kvs[0].Key) != "p/1" || string(pre.Kvs[1].Key) != "p/2" {
		t.Fatalf("prefix p/ = %v", pre.Kvs)
	}

	// Compare-and-swap: succeeds at the current mod revision, fails after.
	cas := func() *clientv3.TxnResponse {
		resp, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision("a"), "=", rev1)).
			Then(clientv3.OpPut("a", "2")).
			Else(clientv3.OpGet("a")).
			Commit()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := cas(); !resp.Succeeded {
		t.Fatal("first CAS failed")
	}
	resp := cas()
	if resp.Succeeded {
		t.Fatal("second CAS succeeded on a stale revision")
	}
	if v := resp.Responses[0].GetResponseRange().Kvs[0].Value; string(v) != "2" {
		t.Fatalf("else branch read %q, want 2", v)
	}

	old, err := cli.Get(ctx, "a", clientv3.WithRev(rev1))
	if err != nil {
		t.Fatal(err)
	}
	if string(old.Kvs[0].Value) != "1" {
		t.Fatalf("a at revision %d = %q, want 1", rev1, old.Kvs[0].Value)
	}

	del, err := cli.Delete(ctx, "p/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if del.Deleted != 2 {
		t.Fatalf("deleted %d, want 2", del.Deleted)
	}

	// Store errors pass through unchanged.
	if _, err := cli.Compact(ctx, rev1+1); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(ctx, "a", clientv3.WithRev(rev1)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("read below compaction: %v, want %v", err, rpctypes.ErrCompacted)
	}
	if _, err := cli.Get(ctx, "a", clientv3.WithRev(1<<40)); !errors.Is(err, rpctypes.ErrFutureRev) {
		t.Fatalf("read in the future: %v, want %v", err, rpctypes.ErrFutureRev)
	}
	// A negative revision is not rejected: etcd reads it as "latest".
	raw := pb.NewKVClient(newConn(t, cli.Endpoints()[0]))
	neg, err := raw.Range(ctx, &pb.RangeRequest{Key: []byte("a"), Revision: -3})
	if err != nil || len(neg.Kvs) != 1 || string(neg.Kvs[0].Value) != "2" {
		t.Fatalf("range at revision -3: %v, %v", neg, err)
	}
}

// TestValidationThroughClient sends every invalid request through gRPC
// and checks that clientv3 sees etcd's error, and that the backend never
// saw the request.
func TestValidationThroughClient(t *testing.T) {
	b := newFakeBackend()
	addr := startServer(t, b, Config{})
	cli := newClient(t, addr)
	raw := pb.NewKVClient(newConn(t, addr))
	ctx := testContext(t)

	manyPuts := make([]clientv3.Op, DefaultMaxTxnOps+1)
	for i := range manyPuts {
		manyPuts[i] = clientv3.OpPut(fmt.Sprintf("k%d", i), "v")
	}
	bigValue := strings.Repeat("x", DefaultMaxRequestBytes) // over the limit, under the gRPC limit

	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"put empty key", func() error { _, err := cli.Put(ctx, "", "v"); return err }, rpctypes.ErrEmptyKey},
		{"get empty key", func() error { _, err := cli.Get(ctx, ""); return err }, rpctypes.ErrEmptyKey},
		{"delete empty key", func() error { _, err := cli.Delete(ctx, ""); return err }, rpctypes.ErrEmptyKey},
		{"put ignore value with value", func() error {
			_, err := cli.Put(ctx, "k", "v", clientv3.WithIgnoreValue())
			return err
		}, rpctypes.ErrValueProvided},
		{"put ignore lease with lease", func() error {
			_, err := cli.Put(ctx, "k", "", clientv3.WithLease(5), clientv3.WithIgnoreLease())
			return err
		}, rpctypes.ErrLeaseProvided},
		{"bad sort target", func() error {
			_, err := cli.Get(ctx, "k", clientv3.WithSort(clientv3.SortTarget(99), clientv3.SortAscend))
			return err
		}, rpctypes.ErrInvalidSortOption},
		{"bad sort order", func() error {
			_, err := cli.Get(ctx, "k", clientv3.WithSort(clientv3.SortByKey, clientv3.SortOrder(7)))
			return err
		}, rpctypes.ErrInvalidSortOption},
		{"too many txn ops", func() error { _, err := cli.Txn(ctx).Then(manyPuts...).Commit(); return err }, rpctypes.ErrTooManyOps},
		{"duplicate put in txn", func() error {
			_, err := cli.Txn(ctx).Then(clientv3.OpPut("a", "1"), clientv3.OpPut("a", "2")).Commit()
			return err
		}, rpctypes.ErrDuplicateKey},
		{"put inside deleted prefix in txn", func() error {
			_, err := cli.Txn(ctx).Then(clientv3.OpDelete("a", clientv3.WithPrefix()), clientv3.OpPut("ab", "1")).Commit()
			return err
		}, rpctypes.ErrDuplicateKey},
		{"compare with empty key", func() error {
			_, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(""), "=", 0)).Commit()
			return err
		}, rpctypes.ErrEmptyKey},
		{"nested txn put empty key", func() error {
			_, err := cli.Txn(ctx).Then(clientv3.OpTxn(nil, []clientv3.Op{clientv3.OpPut("", "v")}, nil)).Commit()
			return err
		}, rpctypes.ErrEmptyKey},
		{"empty txn op", func() error {
			_, err := raw.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{}}})
			return rpctypes.Error(err)
		}, rpctypes.ErrKeyNotFound},
		{"put too large", func() error { _, err := cli.Put(ctx, "k", bigValue); return err }, rpctypes.ErrRequestTooLarge},
		{"txn too large", func() error {
			_, err := cli.Txn(ctx).Then(clientv3.OpPut("k", bigValue)).Commit()
			return err
		}, rpctypes.ErrRequestTooLarge},
		{"lease TTL too large", func() error { _, err := cli.Grant(ctx, 9000000001); return err }, rpctypes.ErrLeaseTTLTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	for _, m := range []string{"Range", "Put", "DeleteRange", "Txn", "LeaseGrant"} {
		if n := b.callCount(m); n != 0 {
			t.Errorf("backend %s called %d times for invalid requests", m, n)
		}
	}

	// The accepted neighbours reach the backend.
	if _, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Version("k"), "=", 0)).Commit(); err != nil {
		t.Fatal(err)
	}
	readOnlyBig := &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("k"), Target: pb.Compare_VALUE, TargetUnion: &pb.Compare_Value{Value: []byte(bigValue)}}}}
	if _, err := raw.Txn(ctx, readOnlyBig); err != nil {
		t.Fatalf("large read-only txn: %v (etcd size-checks only writes)", err)
	}
	if n := b.callCount("Txn"); n != 2 {
		t.Fatalf("backend Txn called %d times, want 2", n)
	}
}

func TestLeaseThroughClient(t *testing.T) {
	b := newFakeBackend()
	cli := newClient(t, startServer(t, b, Config{}))
	ctx := testContext(t)

	grant, err := cli.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "leased", "v", clientv3.WithLease(grant.ID)); err != nil {
		t.Fatal(err)
	}
	once, err := cli.KeepAliveOnce(ctx, grant.ID)
	if err != nil || once.TTL != 30 {
		t.Fatalf("keepalive once: %v, %v", once, err)
	}
	kctx, kcancel := context.WithCancel(ctx)
	ka, err := cli.KeepAlive(kctx, grant.ID)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ka:
		if r == nil || r.ID != grant.ID || r.TTL != 30 {
			t.Fatalf("keepalive response %v", r)
		}
	case <-ctx.Done():
		t.Fatal("no keepalive response")
	}
	kcancel()

	ttl, err := cli.TimeToLive(ctx, grant.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.GrantedTTL != 30 || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != "leased" {
		t.Fatalf("time to live: %v, %v", ttl, err)
	}
	leases, err := cli.Leases(ctx)
	if err != nil || len(leases.Leases) != 1 {
		t.Fatalf("leases: %v, %v", leases, err)
	}

	if _, err := cli.Revoke(ctx, grant.ID); err != nil {
		t.Fatal(err)
	}
	if get, err := cli.Get(ctx, "leased"); err != nil || len(get.Kvs) != 0 {
		t.Fatalf("leased key after revoke: %v, %v", get, err)
	}
	// A missing lease: revoke errors; keepalive answers TTL 0 (clientv3
	// turns that into ErrLeaseNotFound) and time-to-live answers TTL -1,
	// both as in etcd.
	if _, err := cli.Revoke(ctx, grant.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("revoke of a revoked lease: %v", err)
	}
	if _, err := cli.KeepAliveOnce(ctx, grant.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("keepalive of a revoked lease: %v", err)
	}
	if ttl, err := cli.TimeToLive(ctx, grant.ID); err != nil || ttl.TTL != -1 {
		t.Fatalf("time to live of a revoked lease: %v, %v", ttl, err)
	}

	// The keepalive stream answers TTL 0 for a missing lease and keeps
	// serving the other leases on it.
	conn := newConn(t, cli.Endpoints()[0])
	stream, err := pb.NewLeaseClient(conn).LeaseKeepAlive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	live, err := cli.Grant(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{12345, int64(live.ID)} {
		if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		wantTTL := int64(0)
		if id == int64(live.ID) {
			wantTTL = 5
		}
		if resp.ID != id || resp.TTL != wantTTL || resp.Header.GetRevision() == 0 {
			t.Fatalf("keepalive %d: %v, want TTL %d and a header", id, resp, wantTTL)
		}
	}
}

func TestMaintenanceAndCluster(t *testing.T) {
	b := newFakeBackend()
	addr := startServer(t, b, Config{})
	cli := newClient(t, addr)
	conn := newConn(t, addr)
	m := pb.NewMaintenanceClient(conn)
	c := pb.NewClusterClient(conn)
	ctx := testContext(t)

	st, err := cli.Status(ctx, addr)
	if err != nil || st.Version != "3.7.0-fake" {
		t.Fatalf("status: %v, %v", st, err)
	}
	ml, err := cli.MemberList(ctx)
	if err != nil || len(ml.Members) != 1 {
		t.Fatalf("member list: %v, %v", ml, err)
	}
	alarms, err := cli.AlarmList(ctx)
	if err != nil || len(alarms.Alarms) != 0 {
		t.Fatalf("alarm list: %v, %v", alarms, err)
	}

	unimplemented := []struct {
		method string
		call   func() error
		why    string
	}{
		{"Maintenance.Alarm ACTIVATE", func() error {
			_, err := m.Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, Alarm: pb.AlarmType_NOSPACE})
			return err
		}, "alarms"},
		{"Maintenance.Defragment", func() error { _, err := m.Defragment(ctx, &pb.DefragmentRequest{}); return err }, "ranges"},
		{"Maintenance.Hash", func() error { _, err := m.Hash(ctx, &pb.HashRequest{}); return err }, "ranges"},
		{"Maintenance.HashKV", func() error { _, err := m.HashKV(ctx, &pb.HashKVRequest{}); return err }, "ranges"},
		{"Maintenance.Snapshot", func() error {
			s, err := m.Snapshot(ctx, &pb.SnapshotRequest{})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, "ranges"},
		{"Maintenance.MoveLeader", func() error { _, err := m.MoveLeader(ctx, &pb.MoveLeaderRequest{}); return err }, "control plane"},
		{"Maintenance.Downgrade", func() error { _, err := m.Downgrade(ctx, &pb.DowngradeRequest{}); return err }, "versions"},
		{"Cluster.MemberAdd", func() error { _, err := c.MemberAdd(ctx, &pb.MemberAddRequest{}); return err }, "control plane"},
		{"Cluster.MemberRemove", func() error { _, err := c.MemberRemove(ctx, &pb.MemberRemoveRequest{}); return err }, "control plane"},
		{"Cluster.MemberUpdate", func() error { _, err := c.MemberUpdate(ctx, &pb.MemberUpdateRequest{}); return err }, "control plane"},
		{"Cluster.MemberPromote", func() error { _, err := c.MemberPromote(ctx, &pb.MemberPromoteRequest{}); return err }, "control plane"},
	}
	for _, tc := range unimplemented {
		err := tc.call()
		st := status.Convert(err)
		if st.Code() != codes.Unimplemented || !strings.Contains(st.Message(), tc.method) || !strings.Contains(st.Message(), tc.why) {
			t.Errorf("%s: %v, want Unimplemented naming the method and saying %q", tc.method, err, tc.why)
		}
	}
}

func TestServerOptionsDefaults(t *testing.T) {
	if n := len(ServerOptions(Config{})); n != 3 {
		t.Fatalf("%d options, want 3", n)
	}
	cfg := Config{}.withDefaults()
	if cfg.MaxRequestBytes != 1572864 || cfg.MaxTxnOps != 128 || cfg.ProgressNotifyInterval != 10*time.Minute || cfg.WatchSendQueueLen != DefaultWatchSendQueueLen {
		t.Fatalf("defaults %+v", cfg)
	}
	if got := (Config{MaxTxnOps: 3}).withDefaults().MaxTxnOps; got != 3 {
		t.Fatalf("MaxTxnOps 3 became %d", got)
	}
}

// TestRequestLimitsFollowConfig checks that the limits come from Config:
// a smaller MaxRequestBytes and MaxTxnOps reject what the defaults accept,
// and gRPC's own limit sits above MaxRequestBytes.
func TestRequestLimitsFollowConfig(t *testing.T) {
	b := newFakeBackend()
	cli := newClient(t, startServer(t, b, Config{MaxRequestBytes: 1024, MaxTxnOps: 2}))
	ctx := testContext(t)
	if _, err := cli.Put(ctx, "k", strings.Repeat("x", 2000)); !errors.Is(err, rpctypes.ErrRequestTooLarge) {
		t.Fatalf("2000-byte put with a 1 KiB limit: %v", err)
	}
	if _, err := cli.Put(ctx, "k", strings.Repeat("x", 1000)); err != nil {
		t.Fatalf("1000-byte put with a 1 KiB limit: %v", err)
	}
	ops := []clientv3.Op{clientv3.OpPut("a", "1"), clientv3.OpPut("b", "1"), clientv3.OpPut("c", "1")}
	if _, err := cli.Txn(ctx).Then(ops...).Commit(); !errors.Is(err, rpctypes.ErrTooManyOps) {
		t.Fatalf("3-op txn with a limit of 2: %v", err)
	}
	if _, err := cli.Txn(ctx).Then(ops[:2]...).Commit(); err != nil {
		t.Fatalf("2-op txn with a limit of 2: %v", err)
	}
	// Far beyond MaxRequestBytes plus the slack, gRPC itself refuses.
	_, err := cli.Put(ctx, "k", strings.Repeat("x", 1024+grpcOverheadBytes+1))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("put over the gRPC limit: %v, want ResourceExhausted", err)
	}
}
