package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tenfold/tenfold/benchkit"
)

// parseBench parses a `tenfold bench` command line and builds its config.
func parseBench(t *testing.T, args ...string) (benchkit.Config, error) {
	t.Helper()
	root := NewRootCommand()
	bench, rest, err := root.Find(append([]string{"bench"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	if err := bench.ParseFlags(rest); err != nil {
		return benchkit.Config{}, err
	}
	return benchConfig(bench, bench.Flags().Args())
}

func TestBenchFlags(t *testing.T) {
	cfg, err := parseBench(t, "put")
	if err != nil {
		t.Fatal(err)
	}
	want := benchkit.DefaultConfig(benchkit.WorkloadPut)
	if cfg != want {
		t.Errorf("defaults:\n%+v\nwant\n%+v", cfg, want)
	}

	cfg, err = parseBench(t, "get", "--clients", "10", "--conns", "3", "--keys", "500", "--key-size", "12",
		"--value-size", "1024", "--total", "5000", "--consistency", "s", "--dial-timeout", "2s", "--seed", "9")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Workload != benchkit.WorkloadGet || cfg.Clients != 10 || cfg.Conns != 3 || cfg.Keys != 500 ||
		cfg.KeySize != 12 || cfg.ValueSize != 1024 || cfg.Total != 5000 || cfg.Duration != 0 ||
		cfg.Consistency != benchkit.Serializable || cfg.DialTimeout != 2*time.Second || cfg.Seed != 9 || !cfg.Prefill {
		t.Errorf("parsed %+v", cfg)
	}

	cfg, err = parseBench(t, "mixed", "--read-ratio", "0.9", "--prefill=false", "--duration", "3s")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ReadRatio != 0.9 || cfg.Prefill || cfg.Duration != 3*time.Second {
		t.Errorf("parsed %+v", cfg)
	}
}

func TestBenchFlagErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"put", "--clients", "0"}, "--clients must be at least 1, got 0"},
		{[]string{"put", "--clients", "4", "--conns", "5"}, "--conns 5 exceeds --clients 4"},
		{[]string{"scan"}, `workload "scan" is not one of put, get, mixed`},
		{[]string{"get", "--read-ratio", "0.5"}, "--read-ratio applies only to the mixed workload"},
		{[]string{"mixed", "--read-ratio", "2"}, "--read-ratio must be between 0 and 1"},
		{[]string{"put", "--total", "10", "--duration", "1s"}, "set exactly one of --total"},
		{[]string{"put", "--consistency", "x"}, `--consistency "x"`},
		{[]string{"put", "--keys", "100000", "--key-size", "3"}, "--key-size 3 is too small"},
	}
	for _, c := range cases {
		_, err := parseBench(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bench %v: err = %v, want %q", c.args, err, c.want)
		}
	}
}

func TestBenchCommandReportsBadFlagsBeforeConnecting(t *testing.T) {
	// Port 1 on loopback has no server: a validation error must come first.
	_, err := runCLI(t, "127.0.0.1:1", "bench", "put", "--clients", "0")
	if err == nil || err.Error() != "bench: --clients must be at least 1, got 0" {
		t.Errorf("err = %v", err)
	}
	_, err = runCLI(t, "127.0.0.1:1", "bench")
	if err == nil || !strings.Contains(err.Error(), "expected one workload: put, get or mixed") {
		t.Errorf("err = %v", err)
	}
}

func TestPrintBenchResult(t *testing.T) {
	res := benchkit.Result{Workload: benchkit.WorkloadGet, Clients: 2, Ops: 10, Throughput: 5,
		Latency: benchkit.LatencySummary{P50: time.Millisecond, P99: 2 * time.Millisecond, P999: 3 * time.Millisecond}}
	var b bytes.Buffer
	if err := printBenchResult(&b, res, false); err != nil {
		t.Fatal(err)
	}
	if want := "workload=get clients=2 ops=10 errors=0 throughput=5.0 ops/s p50=1.000ms p99=2.000ms p99.9=3.000ms\n"; b.String() != want {
		t.Errorf("line %q, want %q", b.String(), want)
	}
	b.Reset()
	if err := printBenchResult(&b, res, true); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil || m["workload"] != "get" || m["latency_p99_ms"] != 2.0 {
		t.Errorf("json %q: %v", b.String(), err)
	}
}
