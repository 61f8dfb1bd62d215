package metrics

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestUnaryCountsByCode(t *testing.T) {
	g := NewGRPC(prometheus.NewRegistry())
	ic := g.UnaryInterceptor()
	info := &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.KV/Range"}
	ok := func(context.Context, any) (any, error) { return "resp", nil }
	fail := func(context.Context, any) (any, error) { return nil, status.Error(codes.Unavailable, "no leader") }
	for range 3 {
		if _, err := ic(context.Background(), "req", info, ok); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ic(context.Background(), "req", info, fail); status.Code(err) != codes.Unavailable {
		t.Fatalf("interceptor changed the error: %v", err)
	}
	for _, tc := range []struct {
		code string
		want float64
	}{{"OK", 3}, {"Unavailable", 1}} {
		got := testutil.ToFloat64(g.handled.WithLabelValues("unary", "etcdserverpb.KV", "Range", tc.code))
		if got != tc.want {
			t.Errorf("handled{code=%s} = %v, want %v", tc.code, got, tc.want)
		}
	}
	if got := testutil.ToFloat64(g.started.WithLabelValues("unary", "etcdserverpb.KV", "Range")); got != 4 {
		t.Errorf("started = %v, want 4", got)
	}
	if n := testutil.CollectAndCount(g.seconds); n != 1 {
		t.Errorf("%d latency histograms, want 1 (one method)", n)
	}
}

// fakeStream is a bidirectional stream that receives n messages, then EOF.
type fakeStream struct {
	grpc.ServerStream
	n int
}

func (s *fakeStream) RecvMsg(any) error {
	if s.n == 0 {
		return errors.New("EOF")
	}
	s.n--
	return nil
}

func (s *fakeStream) SendMsg(any) error { return nil }

func TestStreamCountsMessagesAndType(t *testing.T) {
	g := NewGRPC(prometheus.NewRegistry())
	ic := g.StreamInterceptor()
	info := &grpc.StreamServerInfo{FullMethod: "/etcdserverpb.Watch/Watch", IsClientStream: true, IsServerStream: true}
	handler := func(_ any, ss grpc.ServerStream) error {
		for ss.RecvMsg(nil) == nil {
			_ = ss.SendMsg(nil)
			_ = ss.SendMsg(nil)
		}
		return status.Error(codes.Canceled, "client went away")
	}
	if err := ic(nil, &fakeStream{n: 2}, info, handler); status.Code(err) != codes.Canceled {
		t.Fatalf("interceptor changed the error: %v", err)
	}
	labels := []string{"bidi_stream", "etcdserverpb.Watch", "Watch"}
	if got := testutil.ToFloat64(g.received.WithLabelValues(labels...)); got != 2 {
		t.Errorf("received = %v, want 2", got)
	}
	if got := testutil.ToFloat64(g.sent.WithLabelValues(labels...)); got != 4 {
		t.Errorf("sent = %v, want 4", got)
	}
	if got := testutil.ToFloat64(g.handled.WithLabelValues(append(labels, "Canceled")...)); got != 1 {
		t.Errorf("handled{Canceled} = %v, want 1", got)
	}
	if svc, m := splitMethod("/a.b.C/D"); svc != "a.b.C" || m != "D" {
		t.Errorf("splitMethod = %q %q", svc, m)
	}
}
