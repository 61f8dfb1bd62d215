package benchkit

import (
	"encoding/json"
	"fmt"
	"time"
)

// Result is what one run measured. Latencies are of successful operations
// only; Throughput counts successful operations (goodput).
type Result struct {
	Workload    Workload
	Clients     int
	Conns       int
	Consistency Consistency
	// ReadRatio is the configured fraction of reads: 0 for put, 1 for get.
	ReadRatio float64
	// Ops is the number of successful operations, Reads and Writes its split.
	Ops    int64
	Reads  int64
	Writes int64
	// Errors is the number of failed operations; FirstError says why the
	// first one failed.
	Errors     int64
	FirstError string
	// Elapsed is the wall time from the first operation's start to the
	// last one's end.
	Elapsed time.Duration
	// Throughput is Ops per second of Elapsed.
	Throughput float64
	Latency    LatencySummary
}

// ms formats a duration as milliseconds with microsecond precision.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond))
}

// String is the one-line summary:
//
//	workload=put clients=64 ops=N errors=N throughput=N ops/s p50=Xms p99=Xms p99.9=Xms
func (r Result) String() string {
	return fmt.Sprintf("workload=%s clients=%d ops=%d errors=%d throughput=%.1f ops/s p50=%s p99=%s p99.9=%s",
		r.Workload, r.Clients, r.Ops, r.Errors, r.Throughput, ms(r.Latency.P50), ms(r.Latency.P99), ms(r.Latency.P999))
}

// resultJSON is the machine-readable form of Result: durations in
// milliseconds (floating point), names in snake case.
type resultJSON struct {
	Workload      Workload    `json:"workload"`
	Clients       int         `json:"clients"`
	Conns         int         `json:"conns"`
	Consistency   Consistency `json:"consistency"`
	ReadRatio     float64     `json:"read_ratio"`
	Ops           int64       `json:"ops"`
	Reads         int64       `json:"reads"`
	Writes        int64       `json:"writes"`
	Errors        int64       `json:"errors"`
	FirstError    string      `json:"first_error,omitempty"`
	ElapsedSec    float64     `json:"elapsed_s"`
	ThroughputOps float64     `json:"throughput_ops_per_s"`
	MinMs         float64     `json:"latency_min_ms"`
	MeanMs        float64     `json:"latency_mean_ms"`
	P50Ms         float64     `json:"latency_p50_ms"`
	P90Ms         float64     `json:"latency_p90_ms"`
	P99Ms         float64     `json:"latency_p99_ms"`
	P999Ms        float64     `json:"latency_p999_ms"`
	MaxMs         float64     `json:"latency_max_ms"`
}

func msFloat(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// MarshalJSON encodes the result with durations in milliseconds, e.g.
// {"workload":"put",...,"throughput_ops_per_s":12345.6,"latency_p99_ms":4.2,...}.
func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(resultJSON{
		Workload:      r.Workload,
		Clients:       r.Clients,
		Conns:         r.Conns,
		Consistency:   r.Consistency,
		ReadRatio:     r.ReadRatio,
		Ops:           r.Ops,
		Reads:         r.Reads,
		Writes:        r.Writes,
		Errors:        r.Errors,
		FirstError:    r.FirstError,
		ElapsedSec:    r.Elapsed.Seconds(),
		ThroughputOps: r.Throughput,
		MinMs:         msFloat(r.Latency.Min),
		MeanMs:        msFloat(r.Latency.Mean),
		P50Ms:         msFloat(r.Latency.P50),
		P90Ms:         msFloat(r.Latency.P90),
		P99Ms:         msFloat(r.Latency.P99),
		P999Ms:        msFloat(r.Latency.P999),
		MaxMs:         msFloat(r.Latency.Max),
	})
}
