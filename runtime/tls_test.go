package runtime

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenfold/tenfold/tlsutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
)

// testPKI is a CA with a node and a client certificate, and a node
// certificate of another CA, in dir.
type testPKI struct {
	ca                    *x509.Certificate
	caKey                 *ecdsa.PrivateKey
	caFile                string
	nodeCert, nodeKey     string
	clientCert, clientKey string
	otherCert, otherKey   string
}

func newTestPKI(t *testing.T, dir string) *testPKI {
	t.Helper()
	p := &testPKI{caFile: filepath.Join(dir, "ca.crt"), nodeCert: filepath.Join(dir, "node.crt"), nodeKey: filepath.Join(dir, "node.key"),
		clientCert: filepath.Join(dir, "client.crt"), clientKey: filepath.Join(dir, "client.key"),
		otherCert: filepath.Join(dir, "other.crt"), otherKey: filepath.Join(dir, "other.key")}
	var err error
	if p.ca, p.caKey, err = tlsutil.NewCA("test CA", p.caFile); err != nil {
		t.Fatal(err)
	}
	p.reissueNode(t)
	if err := tlsutil.Issue(p.ca, p.caKey, "root", nil, p.clientCert, p.clientKey); err != nil {
		t.Fatal(err)
	}
	other, otherKey, err := tlsutil.NewCA("other CA", filepath.Join(dir, "other-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tlsutil.Issue(other, otherKey, "intruder", []string{"127.0.0.1"}, p.otherCert, p.otherKey); err != nil {
		t.Fatal(err)
	}
	return p
}

// reissueNode writes a new node certificate and key (a rotation).
func (p *testPKI) reissueNode(t *testing.T) {
	t.Helper()
	if err := tlsutil.Issue(p.ca, p.caKey, "node", []string{"127.0.0.1"}, p.nodeCert, p.nodeKey); err != nil {
		t.Fatal(err)
	}
}

func (p *testPKI) nodeInfo() tlsutil.Info {
	return tlsutil.Info{CertFile: p.nodeCert, KeyFile: p.nodeKey, TrustedCAFile: p.caFile, ClientCertAuth: true}
}

func tlsClient(t *testing.T, eps []string, cfg *tls.Config) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, TLS: cfg, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// servedSerial is the serial number of the certificate a new TLS
// connection to addr sees.
func servedSerial(t *testing.T, addr string, cfg *tls.Config) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestClientAndPeerTLS runs a cluster with mutual TLS on the client port
// and between nodes: a client with a certificate of the CA works, one
// without a certificate or without TLS is refused, /health answers over
// HTTPS on the client port, and a rotated certificate is served to new
// connections without a restart.
func TestClientAndPeerTLS(t *testing.T) {
	dir := t.TempDir()
	p := newTestPKI(t, dir)
	c := startTestClusterWith(t, dir, func(cfg *Config) {
		cfg.PeerTLS = p.nodeInfo()
		if !cfg.Control {
			cfg.ClientTLS = p.nodeInfo()
		}
	})
	good, err := tlsutil.ClientConfig(p.caFile, p.clientCert, p.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	cli := tlsClient(t, c.endpoints(), good)
	c.waitReady(cli)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if g, err := cli.Get(ctx, "k"); err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "v" {
		t.Fatalf("get over TLS = %v, %v", g, err)
	}

	// A watch is a bidirectional stream: over TLS it goes through
	// grpc.Server.ServeHTTP, not the gRPC server's own transport.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	wch := cli.Watch(wctx, "w", clientv3.WithCreatedNotify())
	if r := <-wch; !r.Created {
		t.Fatalf("watch over TLS not created: %+v", r)
	}
	if _, err := cli.Put(ctx, "w", "1"); err != nil {
		t.Fatal(err)
	}
	if r := <-wch; len(r.Events) != 1 || string(r.Events[0].Kv.Value) != "1" {
		t.Fatalf("watch over TLS got %+v", r)
	}

	// More concurrent streams on one connection than HTTP/2's default
	// limit (250): clientv3 opens one gRPC stream per distinct metadata.
	// One endpoint, so that every stream shares one connection.
	// The watches are opened all at once (one at a time is slow under
	// the race detector) and each must be created.
	one := tlsClient(t, c.endpoints()[:1], good)
	const streams = 260
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer scancel()
	var chans []clientv3.WatchChan
	for i := range streams {
		chans = append(chans, one.Watch(metadata.AppendToOutgoingContext(sctx, "stream", strconv.Itoa(i)), "many", clientv3.WithCreatedNotify()))
	}
	for i, ch := range chans {
		if r := <-ch; !r.Created {
			t.Fatalf("watch stream %d of %d over one TLS connection not created: %+v", i, streams, r)
		}
	}
	scancel()

	refused := func(name string, cfg *tls.Config) {
		t.Helper()
		bad := tlsClient(t, c.endpoints()[:1], cfg)
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer rcancel()
		if _, err := bad.Get(rctx, "k"); err == nil {
			t.Errorf("%s: Get succeeded, want it refused", name)
		}
	}
	noCert, err := tlsutil.ClientConfig(p.caFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	refused("client without a certificate", noCert)
	foreign, err := tlsutil.ClientConfig(p.caFile, p.otherCert, p.otherKey)
	if err != nil {
		t.Fatal(err)
	}
	refused("client with another CA's certificate", foreign)
	refused("plaintext client", nil)

	// HTTP on the TLS client port.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: good}, Timeout: 10 * time.Second}
	resp, err := hc.Get("https://" + c.endpoints()[0] + "/health")
	if err != nil {
		t.Fatal(err)
	}
	var h healthResponse
	err = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || h.Health != "true" {
		t.Fatalf("/health over TLS: %d %+v %v", resp.StatusCode, h, err)
	}

	// Rotate the node certificate: new connections see it, and the
	// cluster keeps serving (peers reconnecting use it too).
	before := servedSerial(t, c.endpoints()[0], good)
	p.reissueNode(t)
	c.waitFor("new connections see the rotated certificate", 10*time.Second, func() bool {
		return servedSerial(t, c.endpoints()[0], good) != before
	})
	fresh := tlsClient(t, c.endpoints()[1:2], good)
	pctx, pcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer pcancel()
	if _, err := fresh.Put(pctx, "k2", "v2"); err != nil {
		t.Fatalf("put after rotation: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPeerTLSRefusesForeignCertificate: with peer client certificate
// auth, a data node whose certificate comes from another CA never
// registers with the control node (its keepalives are refused, and the
// control node logs why), while a node with a good certificate does.
func TestPeerTLSRefusesForeignCertificate(t *testing.T) {
	dir := t.TempDir()
	p := newTestPKI(t, dir)
	var logs syncBuffer
	ctlLogger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctl, err := startWithFreeControl(Config{NodeID: 1, Control: true, DataDir: filepath.Join(dir, "c1"), PeerAddr: "127.0.0.1:0",
		TickInterval: 20 * time.Millisecond, Logger: ctlLogger, PeerTLS: p.nodeInfo()})
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, nodes: []*Node{ctl}}
	t.Cleanup(c.stop)
	// The intruder trusts the real CA (so it accepts the control node's
	// certificate) but presents one the control node must refuse.
	intruderTLS := tlsutil.Info{CertFile: p.otherCert, KeyFile: p.otherKey, TrustedCAFile: p.caFile}
	for i, info := range []tlsutil.Info{intruderTLS, p.nodeInfo()} {
		n, err := Start(Config{NodeID: uint64(i + 2), DataDir: filepath.Join(dir, "d", string(rune('a'+i))), PeerAddr: "127.0.0.1:0", ClientAddr: "127.0.0.1:0",
			ControlAddrs: []string{ctl.PeerAddr()}, TickInterval: 20 * time.Millisecond, Logger: testLogger, PeerTLS: info})
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, n)
	}
	registered := func(id uint64) bool {
		s := ctl.Status()
		if s == nil {
			return false
		}
		for _, ni := range s.Nodes {
			if ni.GetNodeId() == id {
				return true
			}
		}
		return false
	}
	c.waitFor("the node with a good certificate registers", 20*time.Second, func() bool { return registered(3) })
	c.waitFor("the control node logs the refusal", 20*time.Second, func() bool {
		return strings.Contains(logs.String(), "refused a TLS connection")
	})
	if registered(2) {
		t.Fatal("the node with another CA's certificate registered")
	}
	if !strings.Contains(logs.String(), "--peer-client-cert-auth") {
		t.Errorf("refusal log does not name the flag: %s", logs.String())
	}
}

// TestStartRefusesBadTLSFiles: a missing certificate fails the start with
// the file and the flag named.
func TestStartRefusesBadTLSFiles(t *testing.T) {
	dir := t.TempDir()
	p := newTestPKI(t, dir)
	missing := filepath.Join(dir, "missing.crt")
	_, err := Start(Config{NodeID: 2, DataDir: filepath.Join(dir, "d"), PeerAddr: "127.0.0.1:0", ClientAddr: "127.0.0.1:0",
		ControlAddrs: []string{"127.0.0.1:1"}, PeerTLS: tlsutil.Info{CertFile: missing, KeyFile: p.nodeKey}})
	if err == nil || !strings.Contains(err.Error(), "--peer-cert-file") || !strings.Contains(err.Error(), missing) {
		t.Fatalf("start with a missing peer certificate: %v", err)
	}
	_, err = Start(Config{NodeID: 2, DataDir: filepath.Join(dir, "d"), PeerAddr: "127.0.0.1:0", ClientAddr: "127.0.0.1:0",
		ControlAddrs: []string{"127.0.0.1:1"}, ClientTLS: tlsutil.Info{CertFile: p.nodeCert, KeyFile: p.otherKey}})
	if err == nil || !strings.Contains(err.Error(), "--key-file") {
		t.Fatalf("start with a key of another certificate: %v", err)
	}
}
