package enginetest

import (
	"fmt"
	"testing"

	"github.com/tenfold/tenfold/engine"
)

// Benchmark shapes: keys and values about the size of raft log keys and
// small entries.
const (
	benchValueBytes = 100
	benchKeys       = 100_000
)

func benchKey(i int) []byte { return fmt.Appendf(nil, "bench/%012d", i) }

// RunBenchmarks measures batch commits, iteration and point reads on engines
// made by open, which must arrange for them to be closed (b.Cleanup).
func RunBenchmarks(b *testing.B, open func(tb testing.TB) engine.Engine) {
	value := make([]byte, benchValueBytes)
	for _, c := range []struct {
		ops  int
		sync bool
	}{{1, false}, {64, false}, {1, true}, {64, true}} {
		b.Run(fmt.Sprintf("Commit/ops=%d/sync=%v", c.ops, c.sync), func(b *testing.B) {
			e := open(b)
			b.SetBytes(int64(c.ops * benchValueBytes))
			i := 0
			for b.Loop() {
				batch := e.NewBatch()
				for range c.ops {
					if err := batch.Set(benchKey(i), value); err != nil {
						b.Fatal(err)
					}
					i++
				}
				if err := batch.Commit(c.sync); err != nil {
					b.Fatal(err)
				}
			}
		})
	}

	// The read benchmarks share one engine of benchKeys keys, filled once:
	// a parent benchmark's body runs only once.
	e := open(b)
	for i := 0; i < benchKeys; i += 1000 {
		batch := e.NewBatch()
		for j := i; j < i+1000; j++ {
			if err := batch.Set(benchKey(j), value); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Commit(false); err != nil {
			b.Fatal(err)
		}
	}
	if err := e.Sync(); err != nil {
		b.Fatal(err)
	}

	b.Run(fmt.Sprintf("Scan/keys=%d", benchKeys), func(b *testing.B) {
		for b.Loop() {
			it, err := e.NewIter(engine.IterOptions{})
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for ok := it.First(); ok; ok = it.Next() {
				_ = it.Value()
				n++
			}
			if err := it.Close(); err != nil {
				b.Fatal(err)
			}
			if n != benchKeys {
				b.Fatalf("scanned %d keys, want %d", n, benchKeys)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchKeys), "ns/key")
	})

	// A short bounded scan, as raft's Entries does: dominated by the cost of
	// creating and seeking an iterator.
	b.Run("NewIterSeek10", func(b *testing.B) {
		i := 0
		for b.Loop() {
			k := (i * 7919) % (benchKeys - 10)
			i++
			it, err := e.NewIter(engine.IterOptions{LowerBound: benchKey(k), UpperBound: benchKey(k + 10)})
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for ok := it.First(); ok; ok = it.Next() {
				n++
			}
			if err := it.Close(); err != nil {
				b.Fatal(err)
			}
			if n != 10 {
				b.Fatalf("scanned %d keys, want 10", n)
			}
		}
	})

	b.Run("Get", func(b *testing.B) {
		i := 0
		for b.Loop() {
			k := (i * 7919) % benchKeys
			i++
			if _, ok, err := e.Get(benchKey(k)); err != nil || !ok {
				b.Fatalf("Get(%q): ok %v, err %v", benchKey(k), ok, err)
			}
		}
	})
}
