package core

import (
	"strings"
	"testing"
	"time"

	"github.com/tenfold/tenfold/engine/memengine"
	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A data node learns its own ranges (CreateReplica) before the directory
// (the next keepalive answer). A request for a key of a range it does not
// know yet waits for the directory within its deadline instead of failing
// (issue 6, defect 8), and fails with Unavailable only at the deadline.
func TestRequestWaitsForRangeCache(t *testing.T) {
	t0 := time.Unix(1000, 0)
	n, err := New(Config{NodeID: 5, Engine: memengine.New(), ControlNodes: []uint64{1}})
	if err != nil {
		t.Fatal(err)
	}
	n.Tick(t0)
	left := &tenfoldpb.RangeDescriptor{RangeId: 3, EndKey: []byte("m"), Replicas: []uint64{2, 3, 4}, Epoch: 1, Kind: tenfoldpb.RangeKind_DATA}
	right := &tenfoldpb.RangeDescriptor{RangeId: 4, StartKey: []byte("m"), Replicas: []uint64{2, 3, 4}, Epoch: 1, Kind: tenfoldpb.RangeKind_DATA}
	n.dir.Update(left)
	if n.dir.Complete() {
		t.Fatal("a directory with only [-inf, m) reports complete")
	}

	n.Submit(ClientRequest{ID: 1, Kind: tenfoldpb.RequestKind_PUT, Msg: &pb.PutRequest{Key: []byte("x"), Value: []byte("1")}, Deadline: t0.Add(time.Second)})
	n.Submit(ClientRequest{ID: 2, Kind: tenfoldpb.RequestKind_PUT, Msg: &pb.PutRequest{Key: []byte("a"), Value: []byte("1")}, Deadline: t0.Add(time.Second)})
	out, err := n.Ready()
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Results) != 0 {
		t.Fatalf("requests ended before the directory arrived: %v", out.Results)
	}
	if got := requestsTo(out, 3); got != 1 {
		t.Fatalf("the put of a (range 3, known) was sent %d times, want 1", got)
	}

	// The directory arrives: the waiting put goes to range 4.
	n.Step(&tenfoldpb.Message{From: 1, To: 5, Body: &tenfoldpb.Message_KeepaliveResponse{KeepaliveResponse: &tenfoldpb.KeepaliveResponse{
		DirectoryVersion: 1, Ranges: []*tenfoldpb.RangeDescriptor{left, right}}}})
	if !n.dir.Complete() {
		t.Fatal("a directory covering the keyspace reports incomplete")
	}
	out, err = n.Ready()
	if err != nil {
		t.Fatal(err)
	}
	if got := requestsTo(out, 4); got != 1 {
		t.Fatalf("after the directory arrived, the put of x was sent to range 4 %d times, want 1", got)
	}

	// A request across the boundary ends at once and leaves nothing waiting.
	n.Submit(ClientRequest{ID: 3, Kind: tenfoldpb.RequestKind_DELETE_RANGE, Msg: &pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("z")}, Deadline: t0.Add(time.Second)})
	n.Tick(t0.Add(100 * time.Millisecond))
	out, err = n.Ready()
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Results) != 1 || status.Code(out.Results[0].Err) != codes.FailedPrecondition || n.router.Unrouted() != 0 {
		t.Fatalf("a delete across ranges ended with %v (waiting: %v), want FailedPrecondition and nothing waiting", out.Results, n.router.Unrouted())
	}

	// A key no known range holds still fails, but only at its deadline.
	n2, err := New(Config{NodeID: 6, Engine: memengine.New(), ControlNodes: []uint64{1}})
	if err != nil {
		t.Fatal(err)
	}
	n2.Tick(t0)
	n2.dir.Update(left)
	n2.Submit(ClientRequest{ID: 7, Kind: tenfoldpb.RequestKind_PUT, Msg: &pb.PutRequest{Key: []byte("x"), Value: []byte("1")}, Deadline: t0.Add(time.Second)})
	for now := t0; ; now = now.Add(100 * time.Millisecond) {
		n2.Tick(now)
		out, err := n2.Ready()
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Results) == 0 {
			if now.After(t0.Add(2 * time.Second)) {
				t.Fatal("the waiting put did not end at its deadline")
			}
			continue
		}
		r := out.Results[0]
		if !now.After(t0.Add(time.Second)) {
			t.Fatalf("the put ended at %v, before its deadline: %v", now.Sub(t0), r.Err)
		}
		if status.Code(r.Err) != codes.Unavailable || !strings.Contains(r.Err.Error(), "no range known") {
			t.Fatalf("the put ended with %v, want Unavailable naming the missing range", r.Err)
		}
		return
	}
}

// requestsTo counts the client requests in out addressed to a range.
func requestsTo(out Output, rangeID uint64) int {
	c := 0
	for _, m := range out.Messages {
		if r := m.GetRequest(); r != nil && r.GetRangeId() == rangeID {
			c++
		}
	}
	return c
}
