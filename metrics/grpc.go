// Package metrics holds tenfold's Prometheus instruments that are not tied
// to one node's state: per-RPC counters and latency histograms of a gRPC
// server, with the names and labels of go-grpc-prometheus (the ones etcd
// exports), so existing etcd dashboards and alerts read them unchanged.
package metrics

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Type label values, as go-grpc-prometheus names them.
const (
	typeUnary        = "unary"
	typeClientStream = "client_stream"
	typeServerStream = "server_stream"
	typeBidiStream   = "bidi_stream"
)

// GRPC counts the RPCs of one gRPC server.
type GRPC struct {
	started  *prometheus.CounterVec
	handled  *prometheus.CounterVec
	received *prometheus.CounterVec
	sent     *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

// NewGRPC registers the instruments with reg.
func NewGRPC(reg prometheus.Registerer) *GRPC {
	labels := []string{"grpc_type", "grpc_service", "grpc_method"}
	g := &GRPC{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "grpc_server_started_total",
			Help: "Total number of RPCs started on the server."}, labels),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "grpc_server_handled_total",
			Help: "Total number of RPCs completed on the server, regardless of success or failure."}, append(labels, "grpc_code")),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "grpc_server_msg_received_total",
			Help: "Total number of RPC stream messages received on the server."}, labels),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "grpc_server_msg_sent_total",
			Help: "Total number of gRPC stream messages sent by the server."}, labels),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "grpc_server_handling_seconds",
			Help:    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
			Buckets: prometheus.DefBuckets}, labels),
	}
	reg.MustRegister(g.started, g.handled, g.received, g.sent, g.seconds)
	return g
}

// splitMethod turns "/etcdserverpb.KV/Range" into service and method.
func splitMethod(full string) (string, string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndex(full, "/"); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}

// UnaryInterceptor counts and times unary RPCs.
func (g *GRPC) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		svc, method := splitMethod(info.FullMethod)
		start := time.Now()
		g.started.WithLabelValues(typeUnary, svc, method).Inc()
		g.received.WithLabelValues(typeUnary, svc, method).Inc()
		resp, err := handler(ctx, req)
		g.handled.WithLabelValues(typeUnary, svc, method, status.Code(err).String()).Inc()
		g.seconds.WithLabelValues(typeUnary, svc, method).Observe(time.Since(start).Seconds())
		if err == nil {
			g.sent.WithLabelValues(typeUnary, svc, method).Inc()
		}
		return resp, err
	}
}

// StreamInterceptor counts and times streaming RPCs and their messages.
func (g *GRPC) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		svc, method := splitMethod(info.FullMethod)
		typ := typeBidiStream
		switch {
		case info.IsClientStream && !info.IsServerStream:
			typ = typeClientStream
		case !info.IsClientStream && info.IsServerStream:
			typ = typeServerStream
		}
		start := time.Now()
		g.started.WithLabelValues(typ, svc, method).Inc()
		err := handler(srv, &countedStream{ServerStream: ss,
			received: g.received.WithLabelValues(typ, svc, method), sent: g.sent.WithLabelValues(typ, svc, method)})
		g.handled.WithLabelValues(typ, svc, method, status.Code(err).String()).Inc()
		g.seconds.WithLabelValues(typ, svc, method).Observe(time.Since(start).Seconds())
		return err
	}
}

type countedStream struct {
	grpc.ServerStream
	received, sent prometheus.Counter
}

func (s *countedStream) SendMsg(m any) error {
	err := s.ServerStream.SendMsg(m)
	if err == nil {
		s.sent.Inc()
	}
	return err
}

func (s *countedStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		s.received.Inc()
	}
	return err
}
