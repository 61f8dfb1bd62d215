package mvcc

import (
	"bytes"
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/tenfold/tenfold/engine/memengine"
)

// applyBench applies e's batch at the next revision through an engine
// batch, committed with sync as a replica does.
func applyBench(b *testing.B, eng *memengine.Engine, e *Evaluator, base int64) {
	wb := eng.NewBatch()
	if _, err := Apply(eng, wb, e.Writes(), base); err != nil {
		b.Fatal(err)
	}
	if err := wb.Commit(true); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPut measures evaluating and applying puts of 128-byte values
// over 1024 keys: one put per batch, and 100 puts (distinct keys) per batch.
// The engine is the simulator's in-memory engine, so the numbers are this
// package's CPU cost plus a cheap engine, not disk-bound figures.
func BenchmarkPut(b *testing.B) {
	val := bytes.Repeat([]byte("v"), 128)
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("bench/key/%05d", i))
	}
	for _, perBatch := range []int{1, 100} {
		b.Run(fmt.Sprintf("per-batch=%d", perBatch), func(b *testing.B) {
			eng, rev := memengine.New(), int64(1)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				e := NewEvaluator(eng, rev)
				for range perBatch {
					if _, _, ok, err := e.Put(&pb.PutRequest{Key: keys[i%len(keys)], Value: val}); !ok || err != nil {
						b.Fatalf("put: ok %v err %v", ok, err)
					}
					i++
				}
				applyBench(b, eng, e, rev+1)
				rev += int64(e.Slots())
			}
			b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "puts/s")
		})
	}
}

// BenchmarkRange measures reads over 10,000 keys with two versions each.
func BenchmarkRange(b *testing.B) {
	eng, rev := memengine.New(), int64(1)
	const n = 10000
	for round := range 2 {
		e := NewEvaluator(eng, rev)
		for i := range n {
			key := []byte(fmt.Sprintf("bench/key/%05d", i))
			if _, _, ok, err := e.Put(&pb.PutRequest{Key: key, Value: []byte(fmt.Sprint(round, i))}); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
		applyBench(b, eng, e, rev+1)
		rev += int64(e.Slots())
	}
	prefix := []byte("bench/key/")
	for _, c := range []struct {
		name string
		req  *pb.RangeRequest
		rev  int64
	}{
		{"get", &pb.RangeRequest{Key: []byte("bench/key/04242")}, rev},
		{"get-old-revision", &pb.RangeRequest{Key: []byte("bench/key/04242")}, n},
		{"prefix-limit-100", &pb.RangeRequest{Key: prefix, RangeEnd: prefixEnd(prefix), Limit: 100}, rev},
		{"prefix-count-only", &pb.RangeRequest{Key: prefix, RangeEnd: prefixEnd(prefix), CountOnly: true}, rev},
		{"prefix-sort-mod-limit-10", &pb.RangeRequest{Key: prefix, RangeEnd: prefixEnd(prefix), Limit: 10,
			SortTarget: pb.RangeRequest_MOD, SortOrder: pb.RangeRequest_DESCEND}, rev},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Range(eng, c.req, c.rev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
