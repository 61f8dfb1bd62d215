package system

import (
	"testing"

	"github.com/tenfold/tenfold/core/host/hosttest"
	"github.com/tenfold/tenfold/core/replica"
	"github.com/tenfold/tenfold/tenfoldpb"
)

// A grant that would pass the persisted window end stops the node with
// S6-window before the grant goes out (a new leader starts counting at
// the window end, so it would hand the same revisions out again); a grant
// inside the window goes out.
func TestGrantStaysInWindow(t *testing.T) {
	for _, tc := range []struct {
		name    string
		counter int64
		want    string
	}{
		{"past the window", 100, "S6-window"},
		{"inside the window", 99, ""},
	} {
		h := hosttest.New()
		r, err := replica.Open(h, &tenfoldpb.RangeDescriptor{RangeId: 2, Replicas: []uint64{1}, Epoch: 1, Kind: tenfoldpb.RangeKind_SYSTEM})
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(h, r)
		if err != nil {
			t.Fatal(err)
		}
		r.SetMachine(s)
		s.counter, s.windowEnd = tc.counter, 100
		ws := []seqWaiter{{from: 3, req: &tenfoldpb.SeqRequest{Id: 1, RangeId: 3, Count: 1, Incarnation: 1}}}
		s.grant(&ws)
		if got := h.Invariant(); got != tc.want || (len(h.Sent) == 1) != (tc.want == "") {
			t.Errorf("%s: invariant %q, %d grants sent; want %q", tc.name, got, len(h.Sent), tc.want)
		}
	}
}
