package datarange

import (
	"errors"
	"testing"

	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/core/host/hosttest"
	"github.com/tenfold/tenfold/core/replica"
	"github.com/tenfold/tenfold/tenfoldpb"
	raftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func newTestRange(t *testing.T) (*hosttest.Host, *Range) {
	t.Helper()
	h := hosttest.New()
	r, err := replica.Open(h, &tenfoldpb.RangeDescriptor{RangeId: 3, Replicas: []uint64{1}, Epoch: 1, Kind: tenfoldpb.RangeKind_DATA})
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(h, r)
	if err != nil {
		t.Fatal(err)
	}
	r.SetMachine(d)
	return h, d
}

// A grant that would write at or below the range's revision, or lower its
// closed revision, stops the node with S6-grant or S7-closed on receipt,
// and the cycle does not take it; a good grant passes.
func TestGrantAssertions(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		first, count, current int64
		want                  string
	}{
		{"below the range's revision", 5, 2, 30, "S6-grant"},
		{"current below closed", 11, 2, 15, "S7-closed"},
		{"good", 11, 2, 25, ""},
	} {
		h, d := newTestRange(t)
		d.r.Applied().Revision, d.r.Applied().Closed = 10, 20
		d.cycle = &cycle{seqID: 7, seqTarget: 1, seqCount: uint64(tc.count)}
		took := d.SeqGranted(1, &tenfoldpb.SeqResponse{Id: 7, Incarnation: 1, First: tc.first, Count: uint64(tc.count), Current: tc.current})
		if got := h.Invariant(); got != tc.want || took != (tc.want == "") {
			t.Errorf("%s: invariant %q, grant taken %t; want %q, taken %t", tc.name, got, took, tc.want, tc.want == "")
		}
	}
}

// An applied batch whose closed revision is below its own revisions
// (S6-answer) or below the range's closed revision (S7-closed) stops the
// replica that applies it.
func TestApplyAssertions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		batch  *tenfoldpb.WriteBatch
		wantID string
	}{
		{"closed below its own revisions", &tenfoldpb.WriteBatch{Slots: 2, BaseRevision: 11, Closed: 11}, "S6-answer"},
		{"closed goes back", &tenfoldpb.WriteBatch{Closed: 15}, "S7-closed"},
		{"base not above the revision", &tenfoldpb.WriteBatch{Slots: 1, BaseRevision: 10, Closed: 25}, "S6"},
		{"good", &tenfoldpb.WriteBatch{Slots: 1, BaseRevision: 11, Closed: 25}, ""},
	} {
		_, d := newTestRange(t)
		d.r.Applied().Revision, d.r.Applied().Closed = 10, 20
		data, err := proto.Marshal(tc.batch)
		if err != nil {
			t.Fatal(err)
		}
		b := d.h.Engine().NewBatch()
		_, err = d.Apply(b, &raftpb.Entry{Index: proto.Uint64(1), Term: proto.Uint64(1), Data: data})
		b.Close()
		if got := invariantID(err); got != tc.wantID {
			t.Errorf("%s: Apply = %v, want invariant %q", tc.name, err, tc.wantID)
		}
	}
}

func invariantID(err error) string {
	var ie *host.InvariantError
	if errors.As(err, &ie) {
		return ie.ID
	}
	return ""
}
