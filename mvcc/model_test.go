package mvcc

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"
)

// model is a deliberately naive reference for etcd's semantics: every
// version of every key in a list, reads by scanning everything, and the
// serial order "one request after another". The package must agree with it
// on responses, events and reads at every revision.
type model struct {
	hist   map[string][]*mvccpb.KeyValue // versions, oldest first; a tombstone has Version 0
	rev    int64
	events []*mvccpb.Event
}

func newModel() *model { return &model{hist: make(map[string][]*mvccpb.KeyValue), rev: 1} }

// at returns key's live version at rev.
func (m *model) at(key string, rev int64) *mvccpb.KeyValue {
	var live *mvccpb.KeyValue
	for _, v := range m.hist[key] {
		if v.ModRevision <= rev {
			live = v
			if v.Version == 0 {
				live = nil
			}
		}
	}
	return live
}

// liveIn returns the live versions in [key, end) at rev, in key order.
func (m *model) liveIn(iv interval, rev int64) []*mvccpb.KeyValue {
	var keys []string
	for k := range m.hist {
		if iv.contains([]byte(k)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []*mvccpb.KeyValue
	for _, k := range keys {
		if kv := m.at(k, rev); kv != nil {
			out = append(out, copyKV(kv))
		}
	}
	return out
}

func (m *model) rangeAt(req *pb.RangeRequest, rev int64) (*pb.RangeResponse, error) {
	if _, ok := pb.RangeRequest_SortOrder_name[int32(req.SortOrder)]; !ok {
		return nil, rpctypes.ErrGRPCInvalidSortOption
	}
	kvs := m.liveIn(requestInterval(req.Key, req.RangeEnd), rev)
	resp := &pb.RangeResponse{Count: int64(len(kvs))}
	if req.CountOnly {
		return resp, nil
	}
	var kept []*mvccpb.KeyValue
	for _, kv := range kvs {
		if (req.MinModRevision == 0 || kv.ModRevision >= req.MinModRevision) &&
			(req.MaxModRevision == 0 || kv.ModRevision <= req.MaxModRevision) &&
			(req.MinCreateRevision == 0 || kv.CreateRevision >= req.MinCreateRevision) &&
			(req.MaxCreateRevision == 0 || kv.CreateRevision <= req.MaxCreateRevision) {
			kept = append(kept, kv)
		}
	}
	order := req.SortOrder
	if order == pb.RangeRequest_NONE && req.SortTarget != pb.RangeRequest_KEY {
		order = pb.RangeRequest_ASCEND
	}
	if order != pb.RangeRequest_NONE {
		field := func(kv *mvccpb.KeyValue) string {
			switch req.SortTarget {
			case pb.RangeRequest_VERSION:
				return fmt.Sprintf("%020d", kv.Version)
			case pb.RangeRequest_CREATE:
				return fmt.Sprintf("%020d", kv.CreateRevision)
			case pb.RangeRequest_MOD:
				return fmt.Sprintf("%020d", kv.ModRevision)
			case pb.RangeRequest_VALUE:
				return string(kv.Value)
			}
			return string(kv.Key)
		}
		sort.SliceStable(kept, func(i, j int) bool {
			if order == pb.RangeRequest_DESCEND {
				return field(kept[i]) > field(kept[j])
			}
			return field(kept[i]) < field(kept[j])
		})
	}
	if req.Limit > 0 && int64(len(kept)) > req.Limit {
		kept, resp.More = kept[:req.Limit], true
	}
	for _, kv := range kept {
		if req.KeysOnly {
			kv.Value = nil
		}
	}
	resp.Kvs = kept
	return resp, nil
}

// mtxn is one request being executed by the model at revision rev; its
// writes go straight into the history at rev, so its own reads see them.
type mtxn struct {
	m       *model
	rev     int64
	written map[string]bool
	events  []*mvccpb.Event
}

func (t *mtxn) write(key string, kv *mvccpb.KeyValue) error {
	if t.written[key] {
		return rpctypes.ErrGRPCDuplicateKey
	}
	t.written[key] = true
	prev := t.m.at(key, t.rev)
	t.m.hist[key] = append(t.m.hist[key], kv)
	ev := &mvccpb.Event{Kv: kv, PrevKv: prev}
	if kv.Version == 0 {
		ev.Type = mvccpb.Event_DELETE
		ev.Kv = &mvccpb.KeyValue{Key: kv.Key, ModRevision: kv.ModRevision}
	}
	t.events = append(t.events, ev)
	return nil
}

func (t *mtxn) put(p *pb.PutRequest) (*pb.PutResponse, error) {
	prev := t.m.at(string(p.Key), t.rev)
	if (p.IgnoreValue || p.IgnoreLease) && prev == nil {
		return nil, rpctypes.ErrGRPCKeyNotFound
	}
	kv := &mvccpb.KeyValue{Key: p.Key, Value: p.Value, Lease: p.Lease, ModRevision: t.rev, CreateRevision: t.rev, Version: 1}
	if p.IgnoreValue {
		kv.Value = prev.Value
	}
	if p.IgnoreLease {
		kv.Lease = prev.Lease
	}
	if prev != nil {
		kv.CreateRevision, kv.Version = prev.CreateRevision, prev.Version+1
	}
	resp := &pb.PutResponse{}
	if p.PrevKv && prev != nil {
		resp.PrevKv = copyKV(prev)
	}
	return resp, t.write(string(p.Key), kv)
}

func (t *mtxn) del(dr *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	victims := t.m.liveIn(requestInterval(dr.Key, dr.RangeEnd), t.rev)
	for _, kv := range victims {
		if err := t.write(string(kv.Key), &mvccpb.KeyValue{Key: kv.Key, ModRevision: t.rev}); err != nil {
			return nil, err
		}
	}
	resp := &pb.DeleteRangeResponse{Deleted: int64(len(victims))}
	if dr.PrevKv {
		resp.PrevKvs = victims
	}
	return resp, nil
}

func (t *mtxn) txn(rt *pb.TxnRequest) (*pb.TxnResponse, error) {
	ok := true
	for _, c := range rt.Compare {
		// Compares see the state before the request: rev-1.
		kvs := t.m.liveIn(requestInterval(c.Key, c.RangeEnd), t.rev-1)
		if len(kvs) == 0 {
			ok = c.Target != pb.Compare_VALUE && compareKV(c, &mvccpb.KeyValue{})
		}
		for _, kv := range kvs {
			ok = ok && compareKV(c, kv)
		}
		if !ok {
			break
		}
	}
	ops := rt.Success
	if !ok {
		ops = rt.Failure
	}
	resp := &pb.TxnResponse{Succeeded: ok}
	for _, op := range ops {
		out := &pb.ResponseOp{}
		var err error
		switch v := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			var r *pb.RangeResponse
			r, err = t.m.rangeAt(v.RequestRange, t.rev)
			out.Response = &pb.ResponseOp_ResponseRange{ResponseRange: r}
		case *pb.RequestOp_RequestPut:
			var r *pb.PutResponse
			r, err = t.put(v.RequestPut)
			out.Response = &pb.ResponseOp_ResponsePut{ResponsePut: r}
		case *pb.RequestOp_RequestDeleteRange:
			var r *pb.DeleteRangeResponse
			r, err = t.del(v.RequestDeleteRange)
			out.Response = &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: r}
		case *pb.RequestOp_RequestTxn:
			var r *pb.TxnResponse
			r, err = t.txn(v.RequestTxn)
			out.Response = &pb.ResponseOp_ResponseTxn{ResponseTxn: r}
		}
		if err != nil {
			return nil, err
		}
		resp.Responses = append(resp.Responses, out)
	}
	return resp, nil
}

// leaseRevoke stands for DeleteLeaseKeys in the model test's request lists.
type leaseRevoke struct {
	proto.Message
	lease int64
}

// exec runs one request at the next revision; it undoes the history on
// error, and reports whether the request wrote.
func (m *model) exec(req proto.Message) (proto.Message, bool, error) {
	t := &mtxn{m: m, rev: m.rev + 1, written: make(map[string]bool)}
	var resp proto.Message
	var err error
	switch r := req.(type) {
	case *pb.PutRequest:
		resp, err = t.put(r)
	case *pb.DeleteRangeRequest:
		resp, err = t.del(r)
	case *pb.TxnRequest:
		resp, err = t.txn(r)
	case leaseRevoke:
		for _, kv := range m.liveIn(interval{}, m.rev) {
			if kv.Lease == r.lease && err == nil {
				err = t.write(string(kv.Key), &mvccpb.KeyValue{Key: kv.Key, ModRevision: t.rev})
			}
		}
	}
	if err != nil || len(t.written) == 0 {
		for k := range t.written {
			h := m.hist[k]
			m.hist[k] = h[:len(h)-1]
		}
		return resp, false, err
	}
	m.rev++
	m.events = append(m.events, t.events...)
	return resp, true, nil
}

// render prints a response without headers, for comparing.
func render(resp proto.Message) string {
	switch r := resp.(type) {
	case nil:
		return "<nil>"
	case *pb.PutResponse:
		return "put prev=" + kvString(r.PrevKv)
	case *pb.DeleteRangeResponse:
		return fmt.Sprintf("del %d [%s]", r.Deleted, kvsString(r.PrevKvs))
	case *pb.RangeResponse:
		return fmt.Sprintf("range [%s] count=%d more=%v", kvsString(r.Kvs), r.Count, r.More)
	case *pb.TxnResponse:
		parts := make([]string, len(r.Responses))
		for i, op := range r.Responses {
			switch v := op.Response.(type) {
			case *pb.ResponseOp_ResponseRange:
				parts[i] = render(v.ResponseRange)
			case *pb.ResponseOp_ResponsePut:
				parts[i] = render(v.ResponsePut)
			case *pb.ResponseOp_ResponseDeleteRange:
				parts[i] = render(v.ResponseDeleteRange)
			case *pb.ResponseOp_ResponseTxn:
				parts[i] = render(v.ResponseTxn)
			}
		}
		return fmt.Sprintf("txn %v {%s}", r.Succeeded, strings.Join(parts, "; "))
	}
	return fmt.Sprintf("%T", resp)
}

// gen draws random requests over a small keyspace, so that keys collide,
// ranges overlap and batches conflict often.
type gen struct {
	r    *rand.Rand
	keys []string
}

func (g *gen) key() []byte { return []byte(g.keys[g.r.IntN(len(g.keys))]) }

func (g *gen) rangeEnd(key []byte) []byte {
	switch g.r.IntN(5) {
	case 0, 1:
		return nil
	case 2:
		return []byte{0}
	case 3:
		return prefixEnd(key[:min(len(key), 1)])
	default:
		return g.key()
	}
}

// rangeReq draws a Range; filter revisions stay at or below maxFilterRev.
func (g *gen) rangeReq(maxFilterRev int64) *pb.RangeRequest {
	k := g.key()
	req := &pb.RangeRequest{Key: k, RangeEnd: g.rangeEnd(k)}
	if g.r.IntN(3) == 0 {
		req.Limit = int64(g.r.IntN(4))
	}
	if g.r.IntN(3) == 0 {
		req.SortOrder = pb.RangeRequest_SortOrder(g.r.IntN(3))
		req.SortTarget = pb.RangeRequest_SortTarget(g.r.IntN(5))
	}
	req.CountOnly = g.r.IntN(8) == 0
	req.KeysOnly = g.r.IntN(6) == 0
	if g.r.IntN(4) == 0 && maxFilterRev > 0 {
		req.MinModRevision = g.r.Int64N(maxFilterRev + 1)
		req.MaxCreateRevision = g.r.Int64N(maxFilterRev + 1)
	}
	if g.r.IntN(4) == 0 && maxFilterRev > 0 {
		req.MaxModRevision = g.r.Int64N(maxFilterRev + 1)
		req.MinCreateRevision = g.r.Int64N(maxFilterRev + 1)
	}
	return req
}

func (g *gen) put() *pb.PutRequest {
	p := &pb.PutRequest{Key: g.key(), Value: []byte(fmt.Sprint(g.r.IntN(5))), PrevKv: g.r.IntN(2) == 0}
	switch g.r.IntN(8) {
	case 0:
		p.Value, p.IgnoreValue = nil, true
	case 1:
		p.IgnoreLease = true
	default:
		p.Lease = int64(g.r.IntN(3))
	}
	return p
}

func (g *gen) del() *pb.DeleteRangeRequest {
	k := g.key()
	return &pb.DeleteRangeRequest{Key: k, RangeEnd: g.rangeEnd(k), PrevKv: g.r.IntN(2) == 0}
}

func (g *gen) op(depth int, readRev int64) *pb.RequestOp {
	switch n := g.r.IntN(10); {
	case n < 3:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: g.rangeReq(readRev)}}
	case n < 6:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: g.put()}}
	case n < 8 || depth > 1:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: g.del()}}
	default:
		return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: g.txn(depth+1, readRev)}}
	}
}

func (g *gen) txn(depth int, readRev int64) *pb.TxnRequest {
	t := &pb.TxnRequest{}
	for range g.r.IntN(3) {
		k := g.key()
		c := &pb.Compare{Key: k, Result: pb.Compare_CompareResult(g.r.IntN(4)), Target: pb.Compare_CompareTarget(g.r.IntN(5))}
		if g.r.IntN(4) == 0 {
			c.RangeEnd = g.rangeEnd(k)
		}
		switch c.Target {
		case pb.Compare_VALUE:
			c.TargetUnion = &pb.Compare_Value{Value: []byte(fmt.Sprint(g.r.IntN(5)))}
		case pb.Compare_VERSION:
			c.TargetUnion = &pb.Compare_Version{Version: g.r.Int64N(3)}
		case pb.Compare_CREATE:
			c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: g.r.Int64N(readRev + 2)}
		case pb.Compare_MOD:
			c.TargetUnion = &pb.Compare_ModRevision{ModRevision: g.r.Int64N(readRev + 2)}
		case pb.Compare_LEASE:
			c.TargetUnion = &pb.Compare_Lease{Lease: g.r.Int64N(3)}
		}
		t.Compare = append(t.Compare, c)
	}
	for range g.r.IntN(4) {
		t.Success = append(t.Success, g.op(depth, readRev))
	}
	for range g.r.IntN(3) {
		t.Failure = append(t.Failure, g.op(depth, readRev))
	}
	return t
}

func (g *gen) request(readRev int64) proto.Message {
	switch n := g.r.IntN(10); {
	case n < 4:
		return g.put()
	case n < 6:
		return g.del()
	case n < 7:
		return leaseRevoke{lease: 1 + g.r.Int64N(2)}
	default:
		return g.txn(0, readRev)
	}
}

func TestAgainstModel(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runModel(t, newTestStore(t), seed, 150) })
	}
	// The project's in-memory engine, whose batches are invisible until
	// committed, as pebble's are.
	for seed := range uint64(2) {
		t.Run(fmt.Sprint("memengine-seed", seed), func(t *testing.T) { runModel(t, newMemStore(t), seed, 150) })
	}
}

func runModel(t *testing.T, s *testStore, seed uint64, rounds int) {
	g := &gen{r: rand.New(rand.NewPCG(seed, 99)), keys: []string{"\x00", "a", "ab", "a\x00", "b", "ba", "c", "c\xff"}}
	m := newModel()
	compacted := int64(0)
	var retry []proto.Message
	for round := range rounds {
		e := NewEvaluator(s.eng, s.rev)
		e.SetReadBounds(compacted, s.rev)
		reqs := retry
		retry = nil
		for range 1 + g.r.IntN(5) {
			reqs = append(reqs, g.request(s.rev))
		}
		type result struct {
			resp, want proto.Message
			slot       int
			wrote      bool
		}
		var results []result
		for i, req := range reqs {
			var resp proto.Message
			var wrote, ok bool
			var err error
			slot := e.Slots()
			switch r := req.(type) {
			case *pb.PutRequest:
				var x *pb.PutResponse
				x, wrote, ok, err = e.Put(r)
				if x != nil {
					resp = x
				}
			case *pb.DeleteRangeRequest:
				var x *pb.DeleteRangeResponse
				x, wrote, ok, err = e.DeleteRange(r)
				if x != nil {
					resp = x
				}
			case *pb.TxnRequest:
				var x *pb.TxnResponse
				x, wrote, ok, err = e.Txn(r)
				if x != nil {
					resp = x
				}
			case leaseRevoke:
				wrote, ok, err = e.DeleteLeaseKeys(r.lease, Span{})
			}
			if !ok {
				retry = append(retry, req)
				continue
			}
			want, mwrote, merr := m.exec(req)
			if !errors.Is(err, merr) || (err == nil) != (merr == nil) || wrote != mwrote {
				t.Fatalf("round %d request %d %v: err %v wrote %v; model err %v wrote %v", round, i, req, err, wrote, merr, mwrote)
			}
			if err == nil {
				results = append(results, result{resp: resp, want: want, slot: slot, wrote: wrote})
			}
		}
		readRev, base := s.rev, s.rev+1
		before := len(s.events)
		s.applyWrites(e, base)
		if s.rev != m.rev {
			t.Fatalf("round %d: store at %d, model at %d", round, s.rev, m.rev)
		}
		if got, want := eventsString(s.events[before:]), eventsString(m.events[before:]); got != want {
			t.Fatalf("round %d events:\n got %s\nwant %s", round, got, want)
		}
		for i, r := range results {
			if r.resp == nil {
				continue
			}
			rev := readRev
			if r.wrote {
				rev = base + int64(r.slot)
			}
			Stamp(r.resp, rev)
			if got, want := render(r.resp), render(r.want); got != want {
				t.Fatalf("round %d response %d:\n got %s\nwant %s", round, i, got, want)
			}
		}
		for range 4 {
			rev := compacted + g.r.Int64N(s.rev-compacted+1)
			rev = max(rev, 1)
			req := g.rangeReq(s.rev + 1)
			got, err := Range(s.eng, req, rev)
			want, merr := m.rangeAt(req, rev)
			if err != nil || merr != nil || render(got) != render(want) {
				t.Fatalf("round %d: range %v at %d:\n got %s (%v)\nwant %s (%v)", round, req, rev, render(got), err, render(want), merr)
			}
		}
		if g.r.IntN(15) == 0 {
			compacted = max(compacted, g.r.Int64N(s.rev+1))
			b := s.eng.newBatch()
			if _, err := Compact(s.eng, b, Span{}, compacted); err != nil {
				t.Fatal(err)
			}
			b.commit()
		}
	}
	// History from just after the compaction revision is complete.
	from := compacted + 1
	evs, next, err := Events(s.eng, Span{}, from, s.rev, 0, true)
	if err != nil || next != s.rev+1 {
		t.Fatalf("Events: next %d, %v", next, err)
	}
	var want []*mvccpb.Event
	for _, ev := range m.events {
		if ev.Kv.ModRevision >= from {
			want = append(want, ev)
		}
	}
	if eventsString(evs) != eventsString(want) {
		t.Fatalf("history from %d:\n got %s\nwant %s", from, eventsString(evs), eventsString(want))
	}
	// The lease index agrees with the latest versions.
	for lease := int64(1); lease <= 2; lease++ {
		keys, err := KeysWithLease(s.eng, lease, Span{})
		if err != nil {
			t.Fatal(err)
		}
		var wantKeys [][]byte
		for _, kv := range m.liveIn(interval{}, m.rev) {
			if kv.Lease == lease {
				wantKeys = append(wantKeys, kv.Key)
			}
		}
		if !equalKeys(keys, wantKeys) {
			t.Fatalf("lease %d keys %q, want %q", lease, keys, wantKeys)
		}
	}
}

func equalKeys(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// TestModelCatchesDivergence proves the model comparison can fail: a
// store whose history lost one write disagrees with the model.
func TestModelCatchesDivergence(t *testing.T) {
	s, m := newTestStore(t), newModel()
	for _, req := range []proto.Message{
		&pb.PutRequest{Key: []byte("a"), Value: []byte("1")},
		&pb.PutRequest{Key: []byte("a"), Value: []byte("2")},
	} {
		s.one(req)
		m.exec(req)
	}
	s.eng.Delete(versionKey([]byte("a"), 3))
	req := &pb.RangeRequest{Key: []byte("a")}
	got, _ := Range(s.eng, req, 3)
	want, _ := m.rangeAt(req, 3)
	if render(got) == render(want) {
		t.Fatal("a lost version went unnoticed")
	}
}
