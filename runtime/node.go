// Package runtime drives the node core with real I/O: gRPC between nodes,
// pebble on disk, the wall clock, and the etcd v3 API through the gateway.
// All protocol decisions stay in the core; this package only moves bytes and
// time into it and results out of it, from one loop goroutine.
package runtime

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenfold/tenfold/core"
	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/engine/pebbleengine"
	"github.com/tenfold/tenfold/gateway"
	"github.com/tenfold/tenfold/tenfoldpb"
	"github.com/tenfold/tenfold/tlsutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Config configures one tenfold node process role.
type Config struct {
	// NodeID must be unique in the cluster; control nodes are 1..len(ControlAddrs).
	NodeID uint64
	// Control runs the control-plane role; otherwise the data role.
	Control bool
	// DataDir holds the node's pebble engine.
	DataDir string
	// PeerAddr is the address to listen on for other nodes; AdvertisePeer
	// is what others dial (default PeerAddr).
	PeerAddr, AdvertisePeer string
	// ClientAddr is the etcd API listen address (data nodes).
	ClientAddr, AdvertiseClient string
	// ControlAddrs are the control nodes' peer addresses; control node i
	// (from 1) is at ControlAddrs[i-1].
	ControlAddrs []string
	// TickInterval is the raft tick (default 100ms).
	TickInterval time.Duration
	// InitialDataNodes is passed to the control plane (default 3).
	InitialDataNodes int
	// SplitKeys are the initial range split points (control nodes).
	SplitKeys [][]byte
	// Gateway configures the etcd API (limits).
	Gateway gateway.Config
	// Engine overrides the pebble engine (tests).
	Engine engine.Engine
	// Logger; nil logs nothing.
	Logger *slog.Logger
	// Bugs switches on deliberate defects of the core, for bug-injection
	// tests of real-process checkers only (`tenfold start --bugs`, hidden).
	Bugs core.Bugs
	// ClientTLS secures the client port (and https metrics URLs); the
	// zero value serves plaintext.
	ClientTLS tlsutil.Info
	// PeerTLS secures node-to-node gRPC, both the peer listener and the
	// connections this node dials; the zero value is plaintext.
	PeerTLS tlsutil.Info
	// ListenMetricsURLs are extra listeners (http://host:port or
	// https://host:port) for /metrics, /health, /livez and /readyz, as
	// etcd's --listen-metrics-urls.
	ListenMetricsURLs []string
	// EnablePprof serves /debug/pprof/ on the client port and the metrics
	// listeners.
	EnablePprof bool
	// ExtensiveMetrics adds per-range series (one set per local replica),
	// as etcd's --metrics=extensive adds detail; off by default because a
	// node may hold thousands of replicas.
	ExtensiveMetrics bool
}

// Node is a running tenfold node.
type Node struct {
	cfg    Config
	logger *slog.Logger
	eng    engine.Engine
	core   *core.Node
	tr     *transport

	peerLis, clientLis net.Listener
	peerSrv            *grpc.Server
	client             *clientServer // nil on control nodes
	metricsSrvs        []*http.Server
	metricsAddrs       []string
	clientTLS, peerTLS *tlsutil.Source // nil when off
	metrics            *nodeMetrics
	// inFlight counts client requests submitted to the core and not yet
	// answered (tenfold_requests_in_flight).
	inFlight atomic.Int64

	urgent, bulk chan *tenfoldpb.Message
	calls        chan func()
	stop         chan struct{}
	done         chan struct{}
	stopOnce     sync.Once
	// failed is closed when the core fails and the node stops by itself;
	// failErr (written before the close) says why.
	failed  chan struct{}
	failErr error

	nextID  atomic.Uint64
	waiters map[uint64]chan core.Result // loop-owned
	hub     *watchHub                   // loop-owned

	status atomic.Pointer[Snapshot]
}

// Snapshot is a point-in-time view of a node for status reporting.
type Snapshot struct {
	NodeID   uint64
	Control  bool
	Ranges   []core.RangeStatus
	Nodes    []*tenfoldpb.NodeInfo
	Live     map[uint64]bool
	Revision int64
	// DiskBytes is the engine's size on disk, when the engine reports it.
	DiskBytes uint64
	// Routable: the node's range cache covers the whole keyspace.
	Routable bool
	// MinClosed is the lowest closed revision of the local data replicas:
	// every event at or below it has been applied on this node.
	MinClosed int64
	// DirectoryGeneration is the version of the range directory the node
	// routes with.
	DirectoryGeneration uint64
	// Watchers is the number of open watches on this node.
	Watchers int
}

// Start opens the engine, recovers the core and starts serving.
func Start(cfg Config) (*Node, error) {
	if cfg.NodeID == 0 {
		return nil, errors.New("runtime: node ID must be non-zero")
	}
	if len(cfg.ControlAddrs) == 0 {
		return nil, errors.New("runtime: at least one control node address is required (--join)")
	}
	if cfg.Control && int(cfg.NodeID) > len(cfg.ControlAddrs) {
		return nil, fmt.Errorf("runtime: control node ID %d is not in 1..%d (its position in the control address list)", cfg.NodeID, len(cfg.ControlAddrs))
	}
	if !cfg.Control && int(cfg.NodeID) <= len(cfg.ControlAddrs) {
		return nil, fmt.Errorf("runtime: data node ID %d collides with control node IDs 1..%d; use an ID above %d", cfg.NodeID, len(cfg.ControlAddrs), len(cfg.ControlAddrs))
	}
	for _, a := range cfg.ControlAddrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("runtime: malformed control address %q: %v (want host:port)", a, err)
		}
	}
	if cfg.TickInterval == 0 {
		cfg.TickInterval = host.DefaultTickInterval
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, logger: logger, urgent: make(chan *tenfoldpb.Message, inboundQueueLen), bulk: make(chan *tenfoldpb.Message, inboundQueueLen),
		calls: make(chan func(), callQueueLen), stop: make(chan struct{}), done: make(chan struct{}), failed: make(chan struct{}), waiters: map[uint64]chan core.Result{}}
	if err := n.loadTLS(); err != nil {
		return nil, err
	}
	n.metrics = newNodeMetrics(n)
	eng := cfg.Engine
	if eng == nil {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("runtime: create data dir: %w", err)
		}
		e, err := pebbleengine.Open(cfg.DataDir, pebbleengine.Options{})
		if err != nil {
			return nil, fmt.Errorf("runtime: open engine in %s: %w", cfg.DataDir, err)
		}
		eng = e
	}
	n.eng = &timedEngine{Engine: eng, fsync: n.metrics.fsync}
	var controlIDs []uint64
	for i := range cfg.ControlAddrs {
		controlIDs = append(controlIDs, uint64(i+1))
	}
	if err := n.listen(); err != nil {
		n.eng.Close()
		return nil, err
	}
	cfg = n.cfg
	self := &tenfoldpb.NodeInfo{NodeId: cfg.NodeID, Addr: cfg.AdvertisePeer, ClientAddr: cfg.AdvertiseClient, Control: cfg.Control}
	c, err := core.New(core.Config{
		NodeID: cfg.NodeID, Engine: n.eng, Control: cfg.Control, ControlNodes: controlIDs, Self: self,
		TickInterval: cfg.TickInterval, InitialDataNodes: cfg.InitialDataNodes, SplitKeys: cfg.SplitKeys, Bugs: cfg.Bugs,
		Rand: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), cfg.NodeID)), Logger: logger,
		NewStoreID: func() uint64 { var b [8]byte; _, _ = crand.Read(b[:]); return binary.LittleEndian.Uint64(b[:]) },
		SendEarly: func(msgs []*tenfoldpb.Message) {
			for _, m := range msgs {
				n.tr.send(m)
			}
		},
	})
	if err != nil {
		n.stopListeners(0)
		n.eng.Close()
		return nil, err
	}
	n.core = c
	n.hub = newWatchHub(n)
	n.tr = newTransport(logger, n.peerDialCreds())
	for i, a := range cfg.ControlAddrs {
		n.tr.setAddr(uint64(i+1), a)
	}
	go n.loop()
	return n, nil
}

func (n *Node) listen() error {
	var err error
	n.peerLis, err = net.Listen("tcp", n.cfg.PeerAddr)
	if err != nil {
		return fmt.Errorf("runtime: listen for peers on %s: %w", n.cfg.PeerAddr, err)
	}
	if n.cfg.AdvertisePeer == "" || isPortZero(n.cfg.AdvertisePeer) {
		n.cfg.AdvertisePeer = n.peerLis.Addr().String()
	}
	peerOpts := []grpc.ServerOption{grpc.MaxRecvMsgSize(maxPeerMsgBytes)}
	if n.peerTLS != nil {
		peerOpts = append(peerOpts, grpc.Creds(credentials.NewTLS(n.peerTLS.ServerConfig("h2"))))
	}
	n.peerSrv = grpc.NewServer(peerOpts...)
	tenfoldpb.RegisterInternalServer(n.peerSrv, &internalServer{urgent: n.urgent, bulk: n.bulk, done: n.stop})
	go n.peerSrv.Serve(n.peerLis)
	if err := n.listenMetrics(); err != nil {
		n.stopListeners(0)
		return err
	}
	if n.cfg.Control {
		return nil
	}
	n.clientLis, err = net.Listen("tcp", n.cfg.ClientAddr)
	if err != nil {
		n.stopListeners(0)
		return fmt.Errorf("runtime: listen for clients on %s: %w", n.cfg.ClientAddr, err)
	}
	if n.cfg.AdvertiseClient == "" || isPortZero(n.cfg.AdvertiseClient) {
		n.cfg.AdvertiseClient = n.clientLis.Addr().String()
	}
	opts := append(gateway.ServerOptions(n.cfg.Gateway),
		grpc.ChainUnaryInterceptor(n.metrics.grpc.UnaryInterceptor()), grpc.ChainStreamInterceptor(n.metrics.grpc.StreamInterceptor()))
	gs := grpc.NewServer(opts...)
	gateway.Register(gs, &backend{n: n}, n.cfg.Gateway)
	tenfoldpb.RegisterAdminServer(gs, &adminServer{n: n})
	n.client = &clientServer{grpc: gs}
	if n.clientTLS != nil {
		n.client.http = n.newHTTPServer(grpcHandler(gs, n.httpHandler()))
		n.client.http.TLSConfig = n.clientTLS.ServerConfig("h2", "http/1.1")
		// As gateway.ServerOptions does for gRPC's own transport: clientv3
		// multiplexes every watch stream and keepalive over one
		// connection, so the HTTP/2 default of 250 streams would stall
		// the 251st watch of a client.
		n.client.http.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: math.MaxUint32}
		go n.serveHTTP(n.client.http, n.clientLis, true)
		return nil
	}
	n.client.mux = newConnMux(n.clientLis)
	n.client.http = n.newHTTPServer(n.httpHandler())
	go gs.Serve(n.client.mux.grpc)
	go n.serveHTTP(n.client.http, n.client.mux.http, false)
	go n.client.mux.run()
	return nil
}

// listenMetrics opens the --listen-metrics-urls listeners.
func (n *Node) listenMetrics() error {
	for _, raw := range n.cfg.ListenMetricsURLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("runtime: malformed --listen-metrics-urls entry %q: want http://host:port or https://host:port", raw)
		}
		secure := u.Scheme == "https"
		if secure && n.clientTLS == nil {
			return fmt.Errorf("runtime: --listen-metrics-urls entry %q is https but no client TLS is set (--cert-file, --key-file)", raw)
		}
		lis, err := net.Listen("tcp", u.Host)
		if err != nil {
			return fmt.Errorf("runtime: listen for metrics on %s: %w", u.Host, err)
		}
		srv := n.newHTTPServer(n.httpHandler())
		if secure {
			srv.TLSConfig = n.clientTLS.ServerConfig("http/1.1")
		}
		n.metricsSrvs = append(n.metricsSrvs, srv)
		n.metricsAddrs = append(n.metricsAddrs, lis.Addr().String())
		go n.serveHTTP(srv, lis, secure)
	}
	return nil
}

// httpReadHeaderTimeout bounds how long a client may take to send a
// request's headers (a connection that trickles them holds a goroutine).
// There is no overall read timeout: gRPC streams (watches) last.
const httpReadHeaderTimeout = 10 * time.Second

// newHTTPServer is an http.Server for h whose errors (bad handshakes,
// malformed requests) go to the node's log at debug level.
func (n *Node) newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: httpReadHeaderTimeout, ErrorLog: slog.NewLogLogger(n.logger.Handler(), slog.LevelDebug)}
}

// serveHTTP runs srv on lis until it is closed.
func (n *Node) serveHTTP(srv *http.Server, lis net.Listener, secure bool) {
	var err error
	if secure {
		err = srv.ServeTLS(lis, "", "")
	} else {
		err = srv.Serve(lis)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		n.logger.Warn("HTTP listener stopped", "addr", lis.Addr().String(), "err", err)
	}
}

// stopListeners stops the client port (gracefully for at most grace), the
// metrics listeners and the peer server.
func (n *Node) stopListeners(grace time.Duration) {
	if n.client != nil {
		n.client.stop(grace)
	} else if n.clientLis != nil {
		n.clientLis.Close()
	}
	for _, srv := range n.metricsSrvs {
		srv.Close()
	}
	if n.peerSrv != nil {
		n.peerSrv.Stop()
	}
}

// MetricsAddrs are the addresses of the --listen-metrics-urls listeners.
func (n *Node) MetricsAddrs() []string { return n.metricsAddrs }

func isPortZero(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

// ClientAddr is the etcd API address clients dial.
func (n *Node) ClientAddr() string {
	if n.clientLis == nil {
		return ""
	}
	return n.clientLis.Addr().String()
}

// PeerAddr is the address other nodes dial.
func (n *Node) PeerAddr() string { return n.peerLis.Addr().String() }

// ID returns the node ID.
func (n *Node) ID() uint64 { return n.cfg.NodeID }

// Failed is closed when the node stopped by itself because its core
// failed (a storage error, or peers refusing a wiped data directory); Err
// then says why.
func (n *Node) Failed() <-chan struct{} { return n.failed }

// Err is the reason the node failed, once Failed is closed; nil before.
func (n *Node) Err() error {
	select {
	case <-n.failed:
		return n.failErr
	default:
		return nil
	}
}

// Status returns the node's latest status snapshot.
func (n *Node) Status() *Snapshot { return n.status.Load() }

// Stop stops serving, finishes the loop and closes the engine.
func (n *Node) Stop() error {
	var err error
	n.stopOnce.Do(func() {
		if n.client != nil {
			n.client.stop(2 * time.Second)
		}
		for _, srv := range n.metricsSrvs {
			srv.Close()
		}
		close(n.stop)
		<-n.done
		n.peerSrv.Stop()
		n.tr.close()
		err = n.eng.Close()
	})
	return err
}

// loop is the only goroutine that touches the core.
func (n *Node) loop() {
	defer close(n.done)
	ticker := time.NewTicker(n.cfg.TickInterval / 2)
	defer ticker.Stop()
	n.core.Tick(time.Now())
	lastBook := time.Time{}
	for {
		select {
		case <-n.stop:
			n.failAll()
			n.hub.closeAll()
			return
		case <-ticker.C:
			n.core.Tick(time.Now())
			if time.Since(lastBook) >= 500*time.Millisecond {
				lastBook = time.Now()
				n.refreshAddrs()
				n.publishStatus()
			}
		case m := <-n.urgent:
			n.step(m)
		case m := <-n.bulk:
			n.step(m)
		case f := <-n.calls:
			f()
		}
		// Take whatever else is waiting, urgent first, before one Ready:
		// this is where batching (and group commit) comes from.
		for i := 0; i < 1024; i++ {
			select {
			case m := <-n.urgent:
				n.step(m)
				continue
			default:
			}
			select {
			case m := <-n.urgent:
				n.step(m)
			case m := <-n.bulk:
				n.step(m)
			case f := <-n.calls:
				f()
			default:
				i = 1 << 30
			}
		}
		out, err := n.core.Ready()
		if err != nil {
			n.logger.Error("node core failed; stopping the node", "node", n.cfg.NodeID, "err", err)
			n.failErr = err
			close(n.failed)
			n.failAll()
			n.hub.closeAll()
			go n.Stop()
			<-n.stop
			return
		}
		for _, m := range out.Messages {
			n.tr.send(m)
		}
		for _, r := range out.Results {
			if ch, ok := n.waiters[r.ID]; ok {
				delete(n.waiters, r.ID)
				ch <- r
			} else {
				n.hub.result(r)
			}
		}
		if len(out.Applied) > 0 {
			n.hub.applied(out.Applied)
		}
		n.hub.flush()
	}
}

// step hands a peer message to the core. A keepalive teaches the control
// node the sender's address before its registration commits, so the answer
// can reach it.
func (n *Node) step(m *tenfoldpb.Message) {
	if ka := m.GetKeepalive(); ka != nil && ka.GetNode().GetAddr() != "" {
		n.tr.setAddr(m.GetFrom(), ka.GetNode().GetAddr())
	}
	n.core.Step(m)
}

func (n *Node) refreshAddrs() {
	for _, ni := range n.core.Nodes() {
		if ni.GetNodeId() != n.cfg.NodeID {
			n.tr.setAddr(ni.GetNodeId(), ni.GetAddr())
		}
	}
}

func (n *Node) publishStatus() {
	s := &Snapshot{NodeID: n.cfg.NodeID, Control: n.cfg.Control, Ranges: n.core.RangeStatuses(), Nodes: n.core.Nodes(), Live: n.core.Live(), Routable: n.core.Routable(),
		DirectoryGeneration: n.core.DirectoryGeneration(), Watchers: len(n.hub.watches)}
	n.metrics.observe(s.Ranges)
	if du, ok := n.eng.(interface{ DiskUsage() uint64 }); ok {
		s.DiskBytes = du.DiskUsage()
	}
	first := true
	for _, r := range s.Ranges {
		if r.Closed > s.Revision {
			s.Revision = r.Closed
		}
		if r.Kind == tenfoldpb.RangeKind_DATA && (first || r.Closed < s.MinClosed) {
			s.MinClosed, first = r.Closed, false
		}
	}
	n.status.Store(s)
}

func (n *Node) failAll() {
	for id, ch := range n.waiters {
		ch <- core.Result{ID: id, Err: errStopping}
		delete(n.waiters, id)
	}
}

// do runs f on the loop goroutine and waits for it.
func (n *Node) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case n.calls <- func() { f(); close(done) }:
	case <-n.stop:
		return errStopping
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-n.stop:
		return errStopping
	}
}
