package benchkit

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	// 1ms..1000ms in shuffled order: the p-th percentile of 1..1000 by
	// nearest rank is ceil(p*10) ms.
	h := NewHistogram(0)
	vals := rand.New(rand.NewPCG(1, 2)).Perm(1000)
	for _, v := range vals {
		h.Record(time.Duration(v+1) * time.Millisecond)
	}
	cases := []struct {
		p    float64
		want time.Duration
	}{
		{0, 1 * time.Millisecond},
		{0.05, 1 * time.Millisecond},
		{0.1, 1 * time.Millisecond},
		{0.15, 2 * time.Millisecond},
		{50, 500 * time.Millisecond},
		{90, 900 * time.Millisecond},
		{99, 990 * time.Millisecond},
		{99.9, 999 * time.Millisecond},
		{99.95, 1000 * time.Millisecond},
		{100, 1000 * time.Millisecond},
		{150, 1000 * time.Millisecond}, // clamped
		{-3, 1 * time.Millisecond},     // clamped
	}
	for _, c := range cases {
		if got := h.Percentile(c.p); got != c.want {
			t.Errorf("Percentile(%g) = %v, want %v", c.p, got, c.want)
		}
	}
	if got, want := h.Mean(), 500500*time.Microsecond; got != want {
		t.Errorf("Mean = %v, want %v", got, want)
	}
}

func TestPercentileSmallSets(t *testing.T) {
	var empty Histogram
	if got := empty.Percentile(99); got != 0 {
		t.Errorf("empty Percentile(99) = %v, want 0", got)
	}
	if got := empty.Mean(); got != 0 {
		t.Errorf("empty Mean = %v, want 0", got)
	}

	var one Histogram
	one.Record(7 * time.Millisecond)
	for _, p := range []float64{0, 50, 99.9, 100} {
		if got := one.Percentile(p); got != 7*time.Millisecond {
			t.Errorf("single sample Percentile(%g) = %v, want 7ms", p, got)
		}
	}

	// Four samples: p50 is the 2nd (rank ceil(2)), p51 the 3rd, p99 the 4th.
	var four Histogram
	for _, v := range []time.Duration{40, 10, 30, 20} {
		four.Record(v)
	}
	for p, want := range map[float64]time.Duration{25: 10, 50: 20, 51: 30, 75: 30, 99: 40} {
		if got := four.Percentile(p); got != want {
			t.Errorf("Percentile(%g) of {10,20,30,40} = %v, want %v", p, got, want)
		}
	}
}

func TestPercentileTail(t *testing.T) {
	// 10000 samples, 11 of them slow: p99.9 (rank 9990) must land on the
	// slow ones, p99 (rank 9900) must not. A bucketed or sampled
	// histogram that loses the tail fails this.
	h := NewHistogram(10000)
	for i := range 10000 {
		d := time.Millisecond
		if i%1000 == 0 || i == 1 {
			d = time.Second
		}
		h.Record(d)
	}
	if got := h.Percentile(99); got != time.Millisecond {
		t.Errorf("p99 = %v, want 1ms", got)
	}
	if got := h.Percentile(99.9); got != time.Second {
		t.Errorf("p99.9 = %v, want 1s", got)
	}
}

func TestMergeAndRecordAfterPercentile(t *testing.T) {
	a, b := NewHistogram(2), NewHistogram(2)
	a.Record(3)
	a.Record(1)
	b.Record(2)
	if got := a.Percentile(100); got != 3 {
		t.Fatalf("max of a = %v, want 3", got)
	}
	a.Merge(b)
	a.Record(0) // recording after a percentile query must re-sort
	if a.Count() != 4 {
		t.Fatalf("Count = %d, want 4", a.Count())
	}
	s := a.Summary()
	if s.Min != 0 || s.Max != 3 || s.P50 != 1 {
		t.Errorf("Summary = %+v, want min 0, p50 1, max 3", s)
	}
}
