package e2e

import (
	"context"
	"crypto/tls"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/tenfold/tenfold/tlsutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TestEtcdctlTLS runs `tenfold dev --tls` and etcdctl with the printed
// --cacert/--cert/--key: requests work with them, and are refused
// without a client certificate; /metrics on the TLS client port parses
// with the Prometheus text parser.
func TestEtcdctlTLS(t *testing.T) {
	needBinary(t)
	bin := etcdctlPath(t)
	dir := t.TempDir()
	client := freeBase(t, 0, 100, 200)
	peer := freeBase(t, 0, 1, 2, 3)
	dataDir := filepath.Join(dir, "data")
	p := startProc(t, dir, "dev-tls", "dev", "--tls", "--data-dir="+dataDir,
		"--client-port="+strconv.Itoa(client), "--peer-port="+strconv.Itoa(peer))
	files := tlsutil.DevPaths(filepath.Join(dataDir, "tls"))
	var eps []string
	for _, off := range []int{0, 100, 200} {
		eps = append(eps, "https://"+addr(client+off))
	}
	// The certificates appear once the process has started.
	tlsCfg := waitTLSFiles(t, files, p)
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, TLS: tlsCfg, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Get(ctx, "e2e-ready-probe")
		cancel()
		if err == nil {
			break
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("TLS dev cluster not serving: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	secure := ctl{t: t, bin: bin, endpoints: strings.Join(eps, ",")}
	creds := []string{"--cacert=" + files.CA, "--cert=" + files.ClientCert, "--key=" + files.ClientKey}
	wantOutput(t, "put over TLS", secure.run("", append(creds, "put", "/tls/a", "1")...), "OK\n")
	wantOutput(t, "get over TLS", secure.run("", append(creds, "get", "/tls/a", "--print-value-only")...), "1\n")
	out, errOut, err := secure.try("", append(creds, "endpoint", "health")...)
	if err != nil || strings.Count(out+errOut, "is healthy") != len(eps) {
		t.Errorf("endpoint health over TLS: %v\n%s%s", err, out, errOut)
	}
	if out, errOut, err := secure.try("", "--cacert="+files.CA, "--command-timeout=3s", "--dial-timeout=2s", "get", "/tls/a"); err == nil {
		t.Errorf("etcdctl without a client certificate got an answer: %q %q", out, errOut)
	}

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: 10 * time.Second}
	resp, err := hc.Get(eps[0] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	for _, name := range []string{"grpc_server_handled_total", "etcd_server_has_leader", "etcd_mvcc_db_total_size_in_bytes"} {
		if fams[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// waitTLSFiles waits until `tenfold dev --tls` has written its files and
// returns a client config made from them.
func waitTLSFiles(t *testing.T, files tlsutil.DevFiles, p *proc) *tls.Config {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		cfg, err := tlsutil.ClientConfig(files.CA, files.ClientCert, files.ClientKey)
		if err == nil {
			return cfg
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("dev --tls wrote no usable certificates: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
