package benchkit

import (
	"math"
	"slices"
	"time"
)

// Histogram records latencies exactly: it keeps every sample, so its
// percentiles are exact rather than bucketed. It costs 8 bytes per sample
// (a million operations take 8 MB). The zero value is empty and ready to use;
// a Histogram is not safe for concurrent use: give each client its own and
// Merge them.
type Histogram struct {
	samples []time.Duration
	sorted  bool
}

// NewHistogram returns an empty histogram with room for capacity samples
// before it has to grow.
func NewHistogram(capacity int) *Histogram {
	return &Histogram{samples: make([]time.Duration, 0, capacity)}
}

// Record adds one sample.
func (h *Histogram) Record(d time.Duration) {
	h.samples = append(h.samples, d)
	h.sorted = false
}

// Merge adds every sample of o to h.
func (h *Histogram) Merge(o *Histogram) {
	h.samples = append(h.samples, o.samples...)
	h.sorted = false
}

// Count is the number of samples.
func (h *Histogram) Count() int { return len(h.samples) }

func (h *Histogram) sort() {
	if !h.sorted {
		slices.Sort(h.samples)
		h.sorted = true
	}
}

// Percentile returns the nearest-rank p-th percentile, p in [0, 100]: the
// smallest sample such that at least p percent of the samples are less than
// or equal to it. Percentile(0) is the minimum, Percentile(100) the maximum;
// an empty histogram gives 0.
func (h *Histogram) Percentile(p float64) time.Duration {
	n := len(h.samples)
	if n == 0 {
		return 0
	}
	h.sort()
	p = min(max(p, 0), 100)
	// The rank is ceil(p/100 * n); the product is rounded first so that
	// e.g. 99.9% of 1000 samples is rank 999, not 1000 through float error.
	rank := int(math.Ceil(math.Round(p/100*float64(n)*1e9) / 1e9))
	if rank < 1 {
		rank = 1
	}
	return h.samples[rank-1]
}

// Mean returns the arithmetic mean of the samples, 0 if there are none.
func (h *Histogram) Mean() time.Duration {
	if len(h.samples) == 0 {
		return 0
	}
	var sum float64
	for _, s := range h.samples {
		sum += float64(s)
	}
	return time.Duration(sum / float64(len(h.samples)))
}

// Summary returns the usual percentiles of the samples.
func (h *Histogram) Summary() LatencySummary {
	return LatencySummary{
		Min:  h.Percentile(0),
		Mean: h.Mean(),
		P50:  h.Percentile(50),
		P90:  h.Percentile(90),
		P99:  h.Percentile(99),
		P999: h.Percentile(99.9),
		Max:  h.Percentile(100),
	}
}

// LatencySummary is the distribution of operation latencies of a run.
type LatencySummary struct {
	Min  time.Duration
	Mean time.Duration
	P50  time.Duration
	P90  time.Duration
	P99  time.Duration
	P999 time.Duration
	Max  time.Duration
}
