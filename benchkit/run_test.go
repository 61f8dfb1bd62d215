package benchkit

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeKV is a minimal in-memory etcd KV service: enough for Run, and it can
// fail every n-th put.
type fakeKV struct {
	pb.UnimplementedKVServer
	mu        sync.Mutex
	data      map[string][]byte
	rev       int64
	puts      atomic.Int64
	failEvery int64 // fail put number failEvery, 2*failEvery, ...; 0: never
}

func (f *fakeKV) Range(_ context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: f.rev}}
	if v, ok := f.data[string(r.Key)]; ok {
		resp.Count = 1
		if !r.CountOnly {
			resp.Kvs = []*mvccpb.KeyValue{{Key: r.Key, Value: v}}
		}
	}
	return resp, nil
}

func (f *fakeKV) Put(_ context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	n := f.puts.Add(1)
	if f.failEvery > 0 && n%f.failEvery == 0 {
		return nil, status.Error(codes.Internal, "injected failure")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rev++
	f.data[string(r.Key)] = r.Value
	return &pb.PutResponse{Header: &pb.ResponseHeader{Revision: f.rev}}, nil
}

func (f *fakeKV) keys() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.data)
}

// startFake serves a fakeKV on a loopback port until the test ends.
func startFake(t *testing.T, failEvery int64) (*fakeKV, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	kv := &fakeKV{data: map[string][]byte{}, failEvery: failEvery}
	s := grpc.NewServer()
	pb.RegisterKVServer(s, kv)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return kv, l.Addr().String()
}

func testConfig(w Workload) Config {
	c := DefaultConfig(w)
	c.Clients = 8
	c.Keys = 100
	c.ValueSize = 16
	c.Duration = 0
	c.Total = 1000
	c.DialTimeout = 5 * time.Second
	return c
}

func checkLatencies(t *testing.T, r Result) {
	t.Helper()
	l := r.Latency
	if !(0 < l.Min && l.Min <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Errorf("latencies out of order: %+v", l)
	}
}

func TestRunTotalCountsOpsAndErrors(t *testing.T) {
	kv, ep := startFake(t, 10)
	res, err := Run(context.Background(), []string{ep}, testConfig(WorkloadPut), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops+res.Errors != 1000 || res.Errors != 100 || res.Writes != res.Ops || res.Reads != 0 {
		t.Errorf("ops %d (reads %d, writes %d), errors %d; want 900 writes and 100 errors",
			res.Ops, res.Reads, res.Writes, res.Errors)
	}
	if got := kv.puts.Load(); got != 1000 {
		t.Errorf("server saw %d puts, want 1000", got)
	}
	if !strings.Contains(res.FirstError, "injected failure") {
		t.Errorf("FirstError = %q", res.FirstError)
	}
	if res.Throughput <= 0 || res.Elapsed <= 0 || res.Clients != 8 || res.Conns != 8 {
		t.Errorf("result %+v", res)
	}
	checkLatencies(t, res)
}

func TestRunPrefillAndMixed(t *testing.T) {
	kv, ep := startFake(t, 0)
	cfg := testConfig(WorkloadMixed)
	cfg.ReadRatio = 0.7
	cfg.Clients, cfg.Conns = 5, 2
	res, err := Run(context.Background(), []string{ep}, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if kv.keys() != cfg.Keys {
		t.Errorf("prefill wrote %d keys, want %d", kv.keys(), cfg.Keys)
	}
	if res.Ops != 1000 || res.Errors != 0 || res.Reads+res.Writes != 1000 {
		t.Errorf("ops %d (reads %d, writes %d), errors %d", res.Ops, res.Reads, res.Writes, res.Errors)
	}
	if frac := float64(res.Reads) / float64(res.Ops); frac < 0.6 || frac > 0.8 {
		t.Errorf("read fraction %.2f, want about 0.7", frac)
	}
	if res.ReadRatio != 0.7 || res.Conns != 2 {
		t.Errorf("result %+v", res)
	}
	checkLatencies(t, res)
}

func TestRunGetWithoutPrefillReadsOnly(t *testing.T) {
	kv, ep := startFake(t, 0)
	cfg := testConfig(WorkloadGet)
	cfg.Prefill = false
	cfg.Consistency = Serializable
	res, err := Run(context.Background(), []string{ep}, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Reads != 1000 || res.Writes != 0 || kv.puts.Load() != 0 {
		t.Errorf("reads %d writes %d, server puts %d", res.Reads, res.Writes, kv.puts.Load())
	}
}

func TestRunAllFail(t *testing.T) {
	_, ep := startFake(t, 1)
	_, err := Run(context.Background(), []string{ep}, testConfig(WorkloadPut), nil)
	if err == nil || !strings.Contains(err.Error(), "all 1000 operations failed") || !strings.Contains(err.Error(), "injected failure") {
		t.Errorf("err = %v, want all 1000 operations failed with the injected failure", err)
	}
}

func TestRunUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep := l.Addr().String()
	l.Close() // nothing listens there now
	cfg := testConfig(WorkloadPut)
	cfg.DialTimeout = 300 * time.Millisecond
	_, err = Run(context.Background(), []string{ep}, cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("err = %v, want endpoints did not answer", err)
	}
}

func TestRunInvalidConfig(t *testing.T) {
	cfg := testConfig(WorkloadPut)
	cfg.Clients = 0
	if _, err := Run(context.Background(), []string{"127.0.0.1:1"}, cfg, nil); err == nil || !strings.Contains(err.Error(), "--clients") {
		t.Errorf("err = %v, want the --clients error", err)
	}
	if _, err := Run(context.Background(), nil, testConfig(WorkloadPut), nil); err == nil {
		t.Error("no endpoints: want an error")
	}
}

func TestRunDurationAndProgress(t *testing.T) {
	_, ep := startFake(t, 0)
	cfg := testConfig(WorkloadPut)
	cfg.Total, cfg.Duration = 0, 600*time.Millisecond
	var progress bytes.Buffer
	res, err := Run(context.Background(), []string{ep}, cfg, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops == 0 || res.Elapsed < cfg.Duration {
		t.Errorf("ops %d in %v, want some ops in at least %v", res.Ops, res.Elapsed, cfg.Duration)
	}
	out := progress.String()
	if !strings.Contains(out, "\rput [") || !strings.Contains(out, "ops/s") || !strings.HasSuffix(out, "\n") {
		t.Errorf("progress output %q", out)
	}
}

func TestRunCancelStopsWithoutCountingErrors(t *testing.T) {
	_, ep := startFake(t, 0)
	cfg := testConfig(WorkloadPut)
	cfg.Total, cfg.Duration = 0, time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res, err := Run(ctx, []string{ep}, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Ops == 0 {
		t.Errorf("ops %d errors %d after cancel, want ops and no errors", res.Ops, res.Errors)
	}
}
