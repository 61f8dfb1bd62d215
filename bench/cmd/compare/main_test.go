package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tenfold/tenfold/benchkit"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"--only", "etcd"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if ws := o.workloadList(); len(ws) != 2 || ws[0] != benchkit.WorkloadPut || ws[1] != benchkit.WorkloadGet {
		t.Errorf("default workloads %v, want put,get", ws)
	}
	put, get := o.config(benchkit.WorkloadPut), o.config(benchkit.WorkloadGet)
	if put.Clients != 64 || put.ValueSize != 256 || put.Keys != 10000 || put.Duration != 20*time.Second || put.Prefill || !get.Prefill {
		t.Errorf("default configs put %+v get %+v", put, get)
	}
	if s := o.systems(); len(s) != 1 || s[0].name != systemEtcd {
		t.Errorf("--only etcd runs %v", s)
	}

	o, err = parseFlags([]string{"--tenfold-endpoint", "127.0.0.1:2379", "--total", "100"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s := o.systems(); len(s) != 2 || s[0].name != systemEtcd || s[1].name != systemTenfold {
		t.Errorf("systems %v, want etcd then tenfold", s)
	}
	if c := o.config(benchkit.WorkloadPut); c.Total != 100 || c.Duration != 0 {
		t.Errorf("--total: %+v", c)
	}

	for args, want := range map[string]string{
		"":                                       "the tenfold side needs --tenfold-bin",
		"--only x":                               `--only "x" is not etcd or tenfold`,
		"--only etcd --clients 0":                "--clients must be at least 1",
		"--only etcd --workloads put,scan":       `workload "scan"`,
		"--tenfold-bin a --tenfold-endpoint b:1": "only one of --tenfold-bin and --tenfold-endpoint",
		"--only etcd extra":                      "unexpected arguments",
	} {
		_, err := parseFlags(strings.Fields(args), io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseFlags(%q) = %v, want %q", args, err, want)
		}
	}
}

func TestRatios(t *testing.T) {
	res := func(w benchkit.Workload, tput float64, p99 time.Duration) benchkit.Result {
		return benchkit.Result{Workload: w, Throughput: tput, Latency: benchkit.LatencySummary{P99: p99}}
	}
	rs := computeRatios([]outcome{
		{systemEtcd, res(benchkit.WorkloadPut, 1000, 10*time.Millisecond)},
		{systemEtcd, res(benchkit.WorkloadGet, 0, 0)},
		{systemTenfold, res(benchkit.WorkloadPut, 2500, 5*time.Millisecond)},
		{systemTenfold, res(benchkit.WorkloadGet, 10, time.Millisecond)},
		{systemTenfold, res(benchkit.WorkloadMixed, 10, time.Millisecond)}, // no etcd result
	})
	if len(rs) != 2 {
		t.Fatalf("ratios %+v, want put and get", rs)
	}
	if got := formatRatio(rs[0]); got != "ratio workload=put throughput(tenfold/etcd)=2.50 p99(tenfold/etcd)=0.50" {
		t.Errorf("put ratio %q", got)
	}
	if rs[1].Throughput != 0 || rs[1].P99 != 0 {
		t.Errorf("ratio against a zero etcd result %+v, want 0", rs[1])
	}
}
