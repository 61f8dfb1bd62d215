package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// scrape fetches and parses url with the Prometheus text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

// value returns the value of the series of family name whose labels
// include want ("k=v" pairs), and whether it exists.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for _, w := range want {
			k, v, _ := strings.Cut(w, "=")
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetricsScrape scrapes /metrics on the client port of a data node and
// on a control node's --listen-metrics-urls listener, checks etcd's and
// tenfold's series exist, and that the per-RPC counters, the fsync
// histogram and the watcher gauge move with requests, all while gRPC is
// served on the same port.
func TestMetricsScrape(t *testing.T) {
	c := startTestClusterWith(t, t.TempDir(), func(cfg *Config) {
		cfg.ListenMetricsURLs = []string{"http://127.0.0.1:0"}
		cfg.ExtensiveMetrics = true
	})
	// One endpoint only, so every request lands on the node scraped.
	ep := c.nodes[1].ClientAddr()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	c.waitReady(cli)
	url := "http://" + ep + "/metrics"
	before := scrape(t, url)
	for _, name := range []string{"etcd_server_has_leader", "etcd_mvcc_db_total_size_in_bytes", "etcd_disk_wal_fsync_duration_seconds",
		"grpc_server_handled_total", "grpc_server_handling_seconds", "grpc_server_started_total", "tenfold_ranges_led", "tenfold_replicas",
		"tenfold_directory_generation", "tenfold_watchers", "tenfold_requests_in_flight", "tenfold_routable", "go_goroutines"} {
		if _, ok := before[name]; !ok {
			t.Errorf("series %s missing", name)
		}
	}
	puts0, _ := value(before, "grpc_server_handled_total", "grpc_method=Put", "grpc_code=OK", "grpc_type=unary", "grpc_service=etcdserverpb.KV")
	fsync0, _ := value(before, "etcd_disk_wal_fsync_duration_seconds")

	const n = 5
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range n {
		if _, err := cli.Put(ctx, fmt.Sprintf("m%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	wch := cli.Watch(wctx, "w", clientv3.WithCreatedNotify())
	if r := <-wch; !r.Created {
		t.Fatalf("watch not created: %+v", r)
	}
	after := scrape(t, url)
	if puts, _ := value(after, "grpc_server_handled_total", "grpc_method=Put", "grpc_code=OK"); puts != puts0+n {
		t.Errorf("grpc_server_handled_total{Put,OK} went from %v to %v after %d puts", puts0, puts, n)
	}
	if lat, _ := value(after, "grpc_server_handling_seconds", "grpc_method=Put"); lat < n {
		t.Errorf("grpc_server_handling_seconds{Put} has %v samples after %d puts", lat, n)
	}
	if fs, _ := value(after, "etcd_disk_wal_fsync_duration_seconds"); fs <= fsync0 {
		t.Errorf("no fsync timed during %d puts (%v before, %v after)", n, fsync0, fs)
	}
	if st, _ := value(after, "grpc_server_started_total", "grpc_method=Watch", "grpc_type=bidi_stream"); st < 1 {
		t.Errorf("watch stream not counted: %v", st)
	}
	// The watcher gauge comes from the status snapshot (refreshed every
	// 500ms): wait for it.
	c.waitFor("tenfold_watchers counts the open watch", 10*time.Second, func() bool {
		w, _ := value(scrape(t, url), "tenfold_watchers")
		return w >= 1
	})
	if v, _ := value(after, "etcd_server_has_leader"); v != 1 {
		t.Errorf("etcd_server_has_leader = %v on a ready node", v)
	}
	if v, _ := value(after, "etcd_server_leader_changes_seen_total"); v < 1 {
		t.Errorf("etcd_server_leader_changes_seen_total = %v on a node whose ranges elected leaders", v)
	}
	if v, _ := value(after, "tenfold_routable"); v != 1 {
		t.Errorf("tenfold_routable = %v on a ready node", v)
	}

	// Extensive metrics: one series per local replica.
	replicas := 0
	for _, k := range []string{"data", "system", "control"} {
		v, _ := value(after, "tenfold_replicas", "kind="+k)
		replicas += int(v)
	}
	if f := after["tenfold_range_raft_applied_index"]; f == nil || len(f.GetMetric()) != replicas || replicas == 0 {
		t.Errorf("tenfold_range_raft_applied_index: %v series for %d replicas", f, replicas)
	}

	// Every series the Grafana dashboard plots is exported.
	dash, err := os.ReadFile(filepath.Join("..", "docs", "grafana", "tenfold.json"))
	if err != nil {
		t.Fatal(err)
	}
	used := regexp.MustCompile(`\b(?:etcd|tenfold|grpc)_[a-z_]+`).FindAllString(string(dash), -1)
	if len(used) == 0 {
		t.Fatal("no metric names found in the dashboard")
	}
	for _, name := range used {
		name = strings.TrimSuffix(name, "_bucket")
		switch name {
		case "grpc_type", "grpc_service", "grpc_method", "grpc_code": // labels
			continue
		}
		if _, ok := after[name]; !ok {
			t.Errorf("dashboard uses %s, which the node does not export", name)
		}
	}

	// The control node has no client port: its metrics listener serves.
	addrs := c.nodes[0].MetricsAddrs()
	if len(addrs) != 1 {
		t.Fatalf("control node metrics listeners: %v", addrs)
	}
	ctlFams := scrape(t, "http://"+addrs[0]+"/metrics")
	if v, ok := value(ctlFams, "tenfold_replicas", "kind=control"); !ok || v != 1 {
		t.Errorf("control node tenfold_replicas{kind=control} = %v (present %v)", v, ok)
	}
}

// getHealth returns /health's status code and body.
func getHealth(t *testing.T, url string) (int, healthResponse) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var h healthResponse
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("/health body %q: %v", b, err)
	}
	return resp.StatusCode, h
}

// TestHealth: a data node that cannot reach any control node is alive but
// not healthy nor ready; the nodes of a running cluster are healthy and
// ready.
func TestHealth(t *testing.T) {
	dir := t.TempDir()
	dead, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	lonely, err := Start(Config{NodeID: 9, DataDir: filepath.Join(dir, "lonely"), PeerAddr: "127.0.0.1:0", ClientAddr: "127.0.0.1:0",
		ControlAddrs: []string{dead}, TickInterval: 20 * time.Millisecond, Logger: testLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer lonely.Stop()
	base := "http://" + lonely.ClientAddr()
	if code, h := getHealth(t, base+"/health"); code != http.StatusServiceUnavailable || h.Health != "false" || h.Reason == "" {
		t.Errorf("/health of a node without a cluster: %d %+v", code, h)
	}
	if resp, err := http.Get(base + "/readyz"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz of a node without a cluster: %v %v", resp, err)
	}
	if resp, err := http.Get(base + "/livez"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/livez of a running node: %v %v", resp, err)
	}
	// Excluding every failing check makes it ready, as in etcd.
	if resp, err := http.Get(base + "/readyz?exclude=leader&exclude=routable&exclude=linearizable_read"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz with the failing checks excluded: %v %v", resp, err)
	}
	fams := scrape(t, base+"/metrics")
	if v, _ := value(fams, "etcd_server_has_leader"); v != 0 {
		t.Errorf("etcd_server_has_leader = %v on a node without a cluster", v)
	}

	c := startTestCluster(t, filepath.Join(dir, "cluster"))
	c.waitReady(c.client())
	for _, ep := range c.endpoints() {
		c.waitFor("/health true on "+ep, 10*time.Second, func() bool {
			code, h := getHealth(t, "http://"+ep+"/health")
			return code == http.StatusOK && h.Health == "true"
		})
		resp, err := http.Get("http://" + ep + "/readyz?verbose")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "[+]linearizable_read ok") {
			t.Errorf("/readyz?verbose on %s: %d %q", ep, resp.StatusCode, b)
		}
	}
	basic := scrape(t, "http://"+c.endpoints()[0]+"/metrics")
	if _, ok := basic["tenfold_range_raft_term"]; ok {
		t.Error("per-range series exported without ExtensiveMetrics")
	}
	if resp, err := http.Get("http://" + c.endpoints()[0] + "/debug/pprof/"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("pprof served without EnablePprof: %v %v", resp, err)
	}
}
