package benchkit

import (
	"encoding/json"
	"testing"
	"time"
)

func sampleResult() Result {
	return Result{
		Workload:    WorkloadPut,
		Clients:     64,
		Conns:       8,
		Consistency: Linearizable,
		Ops:         123456,
		Writes:      123456,
		Errors:      3,
		FirstError:  "etcdserver: request timed out",
		Elapsed:     20 * time.Second,
		Throughput:  6172.8,
		Latency: LatencySummary{
			Min: 200 * time.Microsecond, Mean: 9 * time.Millisecond,
			P50: 8123456 * time.Nanosecond, P90: 15 * time.Millisecond,
			P99: 25 * time.Millisecond, P999: 101500 * time.Microsecond, Max: 2 * time.Second,
		},
	}
}

func TestResultString(t *testing.T) {
	want := "workload=put clients=64 ops=123456 errors=3 throughput=6172.8 ops/s p50=8.123ms p99=25.000ms p99.9=101.500ms"
	if got := sampleResult().String(); got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}
}

func TestResultJSON(t *testing.T) {
	b, err := json.Marshal(sampleResult())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"workload":             "put",
		"clients":              64.0,
		"conns":                8.0,
		"ops":                  123456.0,
		"errors":               3.0,
		"first_error":          "etcdserver: request timed out",
		"elapsed_s":            20.0,
		"throughput_ops_per_s": 6172.8,
		"latency_p50_ms":       8.123456,
		"latency_p99_ms":       25.0,
		"latency_p999_ms":      101.5,
		"latency_max_ms":       2000.0,
		"read_ratio":           0.0,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v (in %s)", k, m[k], v, b)
		}
	}
}
