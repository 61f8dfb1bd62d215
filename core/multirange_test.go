package core

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TestMultiRangeReadMatchesOneRange writes the same history to a cluster
// with one data range and to one with five, then asks both the same Range
// requests, across every boundary and with every option (prefix, from-key
// and whole-keyspace spans, limit, sort orders and targets, keys_only,
// count_only, old revisions, revision filters, serializable): a read
// across ranges must answer exactly what one range holding every key does.
func TestMultiRangeReadMatchesOneRange(t *testing.T) {
	one := newTestHarness(t, nil)
	many := newTestHarness(t, []string{"b", "c5", "d", "f"})
	var n int
	write := func(kind tenfoldpb.RequestKind, msg proto.Message) {
		n++
		a, b := one.call(t, 2, kind, msg), many.call(t, 2, kind, msg)
		if describeResult(a) != describeResult(b) {
			t.Fatalf("write %d (%v) answered differently: one range %s, five ranges %s", n, msg, describeResult(a), describeResult(b))
		}
	}
	put := func(k, v string) {
		write(tenfoldpb.RequestKind_PUT, &pb.PutRequest{Key: []byte(k), Value: []byte(v)})
	}
	for i, k := range []string{"a", "a1", "b", "b2", "c", "c5", "c6", "d", "e", "f", "g", "z"} {
		put(k, fmt.Sprintf("v%d", (i*7)%5))
	}
	put("b2", "v9")
	put("e", "v0")
	write(tenfoldpb.RequestKind_DELETE_RANGE, &pb.DeleteRangeRequest{Key: []byte("c6")})
	put("a", "v3")
	put("d", "v1")

	spans := [][2]string{{"a", "z"}, {"a", "\x00"}, {"\x00", "\x00"}, {"b", "d"}, {"a1", "c55"}, {"c", "d"}, {"c5", "e"}, {"", ""}}
	var reqs []*pb.RangeRequest
	for _, sp := range spans {
		key, end := []byte(sp[0]), []byte(sp[1])
		if sp[0] == "" {
			key, end = []byte{0}, []byte{0}
		}
		for _, limit := range []int64{0, 1, 3, 100} {
			for order := range int32(3) {
				for target := range int32(5) {
					reqs = append(reqs, &pb.RangeRequest{Key: key, RangeEnd: end, Limit: limit,
						SortOrder: pb.RangeRequest_SortOrder(order), SortTarget: pb.RangeRequest_SortTarget(target)})
				}
			}
		}
		reqs = append(reqs,
			&pb.RangeRequest{Key: key, RangeEnd: end, KeysOnly: true, SortTarget: pb.RangeRequest_VALUE, Limit: 4},
			&pb.RangeRequest{Key: key, RangeEnd: end, CountOnly: true},
			&pb.RangeRequest{Key: key, RangeEnd: end, CountOnly: true, Limit: 2},
			&pb.RangeRequest{Key: key, RangeEnd: end, Revision: 6},
			&pb.RangeRequest{Key: key, RangeEnd: end, Revision: 14, Limit: 2},
			&pb.RangeRequest{Key: key, RangeEnd: end, MinModRevision: 5, MaxModRevision: 14, Limit: 3},
			&pb.RangeRequest{Key: key, RangeEnd: end, MinCreateRevision: 4, SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_CREATE},
			&pb.RangeRequest{Key: key, RangeEnd: end, Serializable: true, Limit: 5},
			&pb.RangeRequest{Key: key, RangeEnd: end, Revision: 1000},
		)
	}
	for i, req := range reqs {
		a, b := one.call(t, 3, tenfoldpb.RequestKind_RANGE, req), many.call(t, 3, tenfoldpb.RequestKind_RANGE, req)
		if sa, sb := rangeAnswer(a), rangeAnswer(b); sa != sb {
			t.Errorf("request %d %v:\n one range:   %s\n five ranges: %s", i, req, sa, sb)
		}
	}
	t.Logf("%d writes, %d range requests compared", n, len(reqs))
}

// rangeAnswer describes a Range result completely (every field of every
// key, more, count, header revision), or its error.
func rangeAnswer(r Result) string {
	if r.Err != nil {
		st := status.Convert(r.Err)
		return fmt.Sprintf("error %s: %s", st.Code(), st.Message())
	}
	m, ok := r.Resp.(*pb.RangeResponse)
	if !ok {
		return fmt.Sprintf("unexpected %T", r.Resp)
	}
	s := fmt.Sprintf("rev=%d count=%d more=%t", m.GetHeader().GetRevision(), m.Count, m.More)
	for _, kv := range m.Kvs {
		s += fmt.Sprintf(" %s=%s(c%d,m%d,v%d)", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version)
	}
	return s
}

// newTestHarness starts a settled cluster of one control and three data
// nodes with the given split keys, for Go tests.
func newTestHarness(t *testing.T, splits []string) *harness {
	d := &datadriven.TestData{Cmd: "cluster"}
	if len(splits) > 0 {
		d.CmdArgs = append(d.CmdArgs, datadriven.CmdArg{Key: "splits", Vals: splits})
	}
	h := newHarness(t, d)
	if why := h.stabilize(300); why != "" {
		t.Fatal(why)
	}
	return h
}

// call submits one request at a node, runs the cluster until it is
// answered, and returns the answer.
func (h *harness) call(t *testing.T, node uint64, kind tenfoldpb.RequestKind, msg proto.Message) Result {
	t.Helper()
	h.nextReq++
	id := h.nextReq
	var got *Result
	h.raw = func(from uint64, r Result) {
		if from == node && r.ID == id {
			got = &r
		}
	}
	defer func() { h.raw = nil }()
	h.ops[opKey{node, id}] = &hop{id: id, node: node, label: "call"}
	n := h.nodes[node]
	n.core.Submit(ClientRequest{ID: id, Kind: kind, Msg: msg, Deadline: h.now.Add(harnessTimeout)})
	h.ready(n)
	if why := h.stabilize(300); why != "" {
		t.Fatalf("request %v: %s", msg, why)
	}
	h.results = nil
	if got == nil {
		t.Fatalf("request %v: no answer", msg)
	}
	return *got
}
