package gateway

// TEST ONLY. fakeBackend is a small single-node, in-memory MVCC store that
// implements Backend well enough to drive the gateway through a real gRPC
// server and a real clientv3 client. It is not the tenfold store and makes
// no claim about it: no durability, no lease expiry, no compaction of data,
// linear scans everywhere.

import (
	"bytes"
	"context"
	"sort"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

type fakeBackend struct {
	mu        sync.Mutex
	rev       int64
	compacted int64
	keys      map[string][]fakeVersion // every version of a key, oldest first
	log       []fakeLogEntry           // the events of each write revision, in order
	leases    map[int64]int64          // lease ID -> granted TTL
	nextLease int64
	watches   map[*fakeWatch]struct{}

	// Injected faults and counters for tests.
	watchErr      error // Watch fails with it when set
	headerLag     int64 // Header reports a revision this far behind (a stale view)
	watchesOpened int
	watchesClosed int
	lastWatchReq  *pb.WatchCreateRequest
	calls         map[string]int
}

type fakeVersion struct {
	rev int64
	kv  *mvccpb.KeyValue // nil for a deletion
}

type fakeLogEntry struct {
	rev    int64
	events []*mvccpb.Event // PrevKv always filled; stripped per watch
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{
		rev:     1, // etcd's store starts at revision 1
		keys:    make(map[string][]fakeVersion),
		leases:  make(map[int64]int64),
		watches: make(map[*fakeWatch]struct{}),
		calls:   make(map[string]int),
	}
}

func (b *fakeBackend) headerLocked() *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: 1, MemberId: 2, RaftTerm: 3, Revision: b.rev}
}

func (b *fakeBackend) count(method string) {
	b.calls[method]++
}

func (b *fakeBackend) callCount(method string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[method]
}

// inRange applies etcd's key/range_end rules.
func inRange(k, key, end []byte) bool {
	switch {
	case len(end) == 0:
		return bytes.Equal(k, key)
	case len(end) == 1 && end[0] == 0:
		return bytes.Compare(k, key) >= 0
	default:
		return bytes.Compare(k, key) >= 0 && bytes.Compare(k, end) < 0
	}
}

// getLocked returns key's value at rev, nil if absent.
func (b *fakeBackend) getLocked(key string, rev int64) *mvccpb.KeyValue {
	vs := b.keys[key]
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].rev <= rev {
			return vs[i].kv
		}
	}
	return nil
}

// rangeLocked returns the live keys in [key, end) at rev, in key order.
func (b *fakeBackend) rangeLocked(key, end []byte, rev int64) []*mvccpb.KeyValue {
	var out []*mvccpb.KeyValue
	for k := range b.keys {
		if !inRange([]byte(k), key, end) {
			continue
		}
		if kv := b.getLocked(k, rev); kv != nil {
			out = append(out, kv)
		}
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Key, out[j].Key) < 0 })
	return out
}

func (b *fakeBackend) readRevLocked(rev int64) (int64, error) {
	if rev <= 0 {
		return b.rev, nil
	}
	if rev > b.rev {
		return 0, rpctypes.ErrGRPCFutureRev
	}
	if rev < b.compacted {
		return 0, rpctypes.ErrGRPCCompacted
	}
	return rev, nil
}

// rangeRespLocked serves r at rev (already checked).
func (b *fakeBackend) rangeRespLocked(r *pb.RangeRequest, rev int64) *pb.RangeResponse {
	kvs := b.rangeLocked(r.Key, r.RangeEnd, rev)
	if r.SortTarget != pb.RangeRequest_KEY || r.SortOrder == pb.RangeRequest_DESCEND {
		less := func(a, c *mvccpb.KeyValue) bool {
			switch r.SortTarget {
			case pb.RangeRequest_VERSION:
				return a.Version < c.Version
			case pb.RangeRequest_CREATE:
				return a.CreateRevision < c.CreateRevision
			case pb.RangeRequest_MOD:
				return a.ModRevision < c.ModRevision
			case pb.RangeRequest_VALUE:
				return bytes.Compare(a.Value, c.Value) < 0
			}
			return bytes.Compare(a.Key, c.Key) < 0
		}
		sort.SliceStable(kvs, func(i, j int) bool {
			if r.SortOrder == pb.RangeRequest_DESCEND {
				return less(kvs[j], kvs[i])
			}
			return less(kvs[i], kvs[j])
		})
	}
	resp := &pb.RangeResponse{Header: b.headerLocked(), Count: int64(len(kvs))}
	if r.CountOnly {
		return resp
	}
	if r.Limit > 0 && int64(len(kvs)) > r.Limit {
		kvs, resp.More = kvs[:r.Limit], true
	}
	for _, kv := range kvs {
		if r.KeysOnly {
			kv = &mvccpb.KeyValue{Key: kv.Key, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease}
		}
		resp.Kvs = append(resp.Kvs, kv)
	}
	return resp
}

// fakeTxn collects the writes of one write revision.
type fakeTxn struct {
	b      *fakeBackend
	rev    int64
	events []*mvccpb.Event
}

func (t *fakeTxn) current(key string) *mvccpb.KeyValue {
	return t.b.getLocked(key, t.rev)
}

func (t *fakeTxn) put(r *pb.PutRequest) (*pb.PutResponse, error) {
	prev := t.current(string(r.Key))
	value, lease := r.Value, r.Lease
	if r.IgnoreValue || r.IgnoreLease {
		if prev == nil {
			return nil, rpctypes.ErrGRPCKeyNotFound
		}
		if r.IgnoreValue {
			value = prev.Value
		}
		if r.IgnoreLease {
			lease = prev.Lease
		}
	}
	if lease != 0 {
		if _, ok := t.b.leases[lease]; !ok {
			return nil, rpctypes.ErrGRPCLeaseNotFound
		}
	}
	kv := &mvccpb.KeyValue{Key: r.Key, Value: value, Lease: lease, ModRevision: t.rev, CreateRevision: t.rev, Version: 1}
	if prev != nil {
		kv.CreateRevision, kv.Version = prev.CreateRevision, prev.Version+1
	}
	t.b.keys[string(r.Key)] = append(t.b.keys[string(r.Key)], fakeVersion{rev: t.rev, kv: kv})
	t.events = append(t.events, &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: kv, PrevKv: prev})
	resp := &pb.PutResponse{}
	if r.PrevKv {
		resp.PrevKv = prev
	}
	return resp, nil
}

func (t *fakeTxn) deleteRange(r *pb.DeleteRangeRequest) *pb.DeleteRangeResponse {
	resp := &pb.DeleteRangeResponse{}
	for _, prev := range t.b.rangeLocked(r.Key, r.RangeEnd, t.rev) {
		k := string(prev.Key)
		t.b.keys[k] = append(t.b.keys[k], fakeVersion{rev: t.rev})
		t.events = append(t.events, &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: prev.Key, ModRevision: t.rev}, PrevKv: prev})
		resp.Deleted++
		if r.PrevKv {
			resp.PrevKvs = append(resp.PrevKvs, prev)
		}
	}
	return resp
}

func compareInt(result pb.Compare_CompareResult, a, c int64) bool {
	switch result {
	case pb.Compare_EQUAL:
		return a == c
	case pb.Compare_GREATER:
		return a > c
	case pb.Compare_LESS:
		return a < c
	case pb.Compare_NOT_EQUAL:
		return a != c
	}
	return false
}

func (t *fakeTxn) compare(c *pb.Compare) bool {
	kvs := t.b.rangeLocked(c.Key, c.RangeEnd, t.rev)
	if len(kvs) == 0 {
		if c.Target == pb.Compare_VALUE {
			return false
		}
		kvs = []*mvccpb.KeyValue{{}}
	}
	for _, kv := range kvs {
		var ok bool
		switch c.Target {
		case pb.Compare_VERSION:
			ok = compareInt(c.Result, kv.Version, c.GetVersion())
		case pb.Compare_CREATE:
			ok = compareInt(c.Result, kv.CreateRevision, c.GetCreateRevision())
		case pb.Compare_MOD:
			ok = compareInt(c.Result, kv.ModRevision, c.GetModRevision())
		case pb.Compare_LEASE:
			ok = compareInt(c.Result, kv.Lease, c.GetLease())
		case pb.Compare_VALUE:
			ok = compareInt(c.Result, int64(bytes.Compare(kv.Value, c.GetValue())), 0)
		}
		if !ok {
			return false
		}
	}
	return true
}

func (t *fakeTxn) txn(r *pb.TxnRequest) (*pb.TxnResponse, error) {
	ok := true
	for _, c := range r.Compare {
		if !t.compare(c) {
			ok = false
			break
		}
	}
	ops := r.Failure
	if ok {
		ops = r.Success
	}
	resp := &pb.TxnResponse{Succeeded: ok}
	for _, op := range ops {
		var out *pb.ResponseOp
		switch u := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			// A txn's reads see its own earlier writes.
			rresp := t.b.rangeRespLocked(u.RequestRange, t.rev)
			out = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: rresp}}
		case *pb.RequestOp_RequestPut:
			presp, err := t.put(u.RequestPut)
			if err != nil {
				return nil, err
			}
			out = &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: presp}}
		case *pb.RequestOp_RequestDeleteRange:
			out = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: t.deleteRange(u.RequestDeleteRange)}}
		case *pb.RequestOp_RequestTxn:
			tresp, err := t.txn(u.RequestTxn)
			if err != nil {
				return nil, err
			}
			out = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: tresp}}
		}
		resp.Responses = append(resp.Responses, out)
	}
	return resp, nil
}

// write runs fn as one write transaction: it commits (and notifies the
// watches) only if fn wrote something, as etcd's revisions require. On
// error the writes are undone.
func (b *fakeBackend) write(fn func(t *fakeTxn) error) (*pb.ResponseHeader, error) {
	snapshot := make(map[string]int, len(b.keys))
	for k, vs := range b.keys {
		snapshot[k] = len(vs)
	}
	t := &fakeTxn{b: b, rev: b.rev + 1}
	if err := fn(t); err != nil || len(t.events) == 0 {
		for k, vs := range b.keys {
			if n, ok := snapshot[k]; ok {
				b.keys[k] = vs[:n]
			} else {
				delete(b.keys, k)
			}
		}
		return b.headerLocked(), err
	}
	b.rev = t.rev
	b.log = append(b.log, fakeLogEntry{rev: t.rev, events: t.events})
	for w := range b.watches {
		w.deliver(t.rev, t.events)
	}
	return b.headerLocked(), nil
}

func (b *fakeBackend) Range(_ context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count("Range")
	rev, err := b.readRevLocked(r.Revision)
	if err != nil {
		return nil, err
	}
	return b.rangeRespLocked(r, rev), nil
}

func (b *fakeBackend) Put(_ context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count("Put")
	var resp *pb.PutResponse
	hdr, err := b.write(func(t *fakeTxn) (err error) {
		resp, err = t.put(r)
		return err
	})
	if err != nil {
		return nil, err
	}
	resp.Header = hdr
	return resp, nil
}

func (b *fakeBackend) DeleteRange(_ context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count("DeleteRange")
	var resp *pb.DeleteRangeResponse
	hdr, _ := b.write(func(t *fakeTxn) error {
		resp = t.deleteRange(r)
		return nil
	})
	resp.Header = hdr
	return resp, nil
}

func (b *fakeBackend) Txn(_ context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count("Txn")
	var resp *pb.TxnResponse
	hdr, err := b.write(func(t *fakeTxn) (err error) {
		resp, err = t.txn(r)
		return err
	})
	if err != nil {
		return nil, err
	}
	resp.Header = hdr
	return resp, nil
}

func (b *fakeBackend) Compact(_ context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count("Compact")
	if r.Revision <= b.compacted {
		return nil, rpctypes.ErrGRPCCompacted
	}
	if r.Revision > b.rev {
		return nil, rpctypes.ErrGRPCFutureRev
	}
	b.compacted = r.Revision
	return &pb.CompactionResponse{Header: b.headerLocked()}, nil
}

func (b *fakeBackend) LeaseGrant(_ context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count("LeaseGrant")
	id := r.ID
	if id == 0 {
		b.nextLease++
		id = 1000 + b.nextLease
	}
	if _, ok := b.leases[id]; ok {
		return nil, rpctypes.ErrGRPCLeaseExist
	}
	b.leases[id] = r.TTL
	return &pb.LeaseGrantResponse{Header: b.headerLocked(), ID: id, TTL: r.TTL}, nil
}

func (b *fakeBackend) LeaseRevoke(_ context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count("LeaseRevoke")
	if _, ok := b.leases[r.ID]; !ok {
		return nil, rpctypes.ErrGRPCLeaseNotFound
	}
	delete(b.leases, r.ID)
	hdr, _ := b.write(func(t *fakeTxn) error {
		for _, kv := range b.rangeLocked([]byte{0}, []byte{0}, t.rev) {
			if kv.Lease == r.ID {
				t.deleteRange(&pb.DeleteRangeRequest{Key: kv.Key})
			}
		}
		return nil
	})
	return &pb.LeaseRevokeResponse{Header: hdr}, nil
}

func (b *fakeBackend) LeaseKeepAlive(_ context.Context, r *pb.LeaseKeepAliveRequest) (*pb.LeaseKeepAliveResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count("LeaseKeepAlive")
	ttl, ok := b.leases[r.ID]
	if !ok {
		return nil, rpctypes.ErrGRPCLeaseNotFound
	}
	return &pb.LeaseKeepAliveResponse{Header: b.headerLocked(), ID: r.ID, TTL: ttl}, nil
}

func (b *fakeBackend) LeaseTimeToLive(_ context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count("LeaseTimeToLive")
	ttl, ok := b.leases[r.ID]
	if !ok {
		return nil, rpctypes.ErrGRPCLeaseNotFound
	}
	resp := &pb.LeaseTimeToLiveResponse{Header: b.headerLocked(), ID: r.ID, TTL: ttl, GrantedTTL: ttl}
	if r.Keys {
		for _, kv := range b.rangeLocked([]byte{0}, []byte{0}, b.rev) {
			if kv.Lease == r.ID {
				resp.Keys = append(resp.Keys, kv.Key)
			}
		}
	}
	return resp, nil
}

func (b *fakeBackend) LeaseLeases(_ context.Context, _ *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count("LeaseLeases")
	resp := &pb.LeaseLeasesResponse{Header: b.headerLocked()}
	for id := range b.leases {
		resp.Leases = append(resp.Leases, &pb.LeaseStatus{ID: id})
	}
	return resp, nil
}

func (b *fakeBackend) Status(_ context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count("Status")
	return &pb.StatusResponse{Header: b.headerLocked(), Version: "3.7.0-fake", Leader: 2, RaftTerm: 3}, nil
}

func (b *fakeBackend) MemberList(_ context.Context, _ *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count("MemberList")
	return &pb.MemberListResponse{
		Header:  b.headerLocked(),
		Members: []*pb.Member{{ID: 2, Name: "fake", ClientURLs: []string{"http://127.0.0.1:0"}}},
	}, nil
}

func (b *fakeBackend) Header(_ context.Context) (*pb.ResponseHeader, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.headerLocked()
	h.Revision -= b.headerLag
	return h, nil
}

// Watch replays history from the start revision, then follows new writes.
func (b *fakeBackend) Watch(_ context.Context, r *pb.WatchCreateRequest) (Watch, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastWatchReq = r
	if b.watchErr != nil {
		return nil, b.watchErr
	}
	w := &fakeWatch{
		b:      b,
		key:    r.Key,
		end:    r.RangeEnd,
		prevKV: r.PrevKv,
		out:    make(chan WatchBatch),
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	b.watchesOpened++
	w.start = r.StartRevision
	if w.start == 0 {
		w.start = b.rev + 1 // the fake's writes are acknowledged under its lock
	}
	go w.pump()
	if w.start < b.compacted {
		w.push(WatchBatch{CompactRevision: b.compacted, Revision: b.rev}, true)
		return w, nil
	}
	for _, e := range b.log {
		if e.rev >= w.start {
			w.deliver(e.rev, e.events)
		}
	}
	b.watches[w] = struct{}{}
	return w, nil
}

// failWatches ends every open watch with err, as a backend failure would.
func (b *fakeBackend) failWatches(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for w := range b.watches {
		delete(b.watches, w)
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
		w.push(WatchBatch{}, true)
	}
}

// unsolicitedProgress queues a progress batch on every watch without being
// asked, which a backend may do; the gateway must not forward it.
func (b *fakeBackend) unsolicitedProgress() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for w := range b.watches {
		w.push(WatchBatch{Revision: b.rev}, false)
	}
}

func (b *fakeBackend) openWatches() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.watchesOpened - b.watchesClosed
}

// fakeWatch queues batches without bound and hands them out in order on an
// unbuffered channel from its own goroutine, so that producers (writes
// under the backend lock) never block on a slow consumer.
type fakeWatch struct {
	b      *fakeBackend
	key    []byte
	end    []byte
	prevKV bool
	start  int64
	out    chan WatchBatch
	wake   chan struct{}
	stop   chan struct{}

	mu        sync.Mutex
	queue     []WatchBatch
	ended     bool // the last batch is queued; close out after it
	err       error
	closeOnce sync.Once
}

// push queues a batch; last ends the watch after it (a zero batch with
// last only ends it).
func (w *fakeWatch) push(batch WatchBatch, last bool) {
	w.mu.Lock()
	if !w.ended {
		if batch.Revision != 0 || batch.CompactRevision != 0 {
			w.queue = append(w.queue, batch)
		}
		w.ended = last
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// deliver queues the events of revision rev that fall in the watch's range.
func (w *fakeWatch) deliver(rev int64, events []*mvccpb.Event) {
	var evs []*mvccpb.Event
	for _, ev := range events {
		if !inRange(ev.Kv.Key, w.key, w.end) {
			continue
		}
		out := &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
		if w.prevKV {
			out.PrevKv = ev.PrevKv
		}
		evs = append(evs, out)
	}
	if len(evs) > 0 {
		w.push(WatchBatch{Events: evs, Revision: rev}, false)
	}
}

func (w *fakeWatch) Start() int64 { return w.start }

func (w *fakeWatch) pump() {
	defer close(w.out)
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			ended := w.ended
			w.mu.Unlock()
			if ended {
				return
			}
			select {
			case <-w.wake:
				continue
			case <-w.stop:
				return
			}
		}
		batch := w.queue[0]
		w.queue = w.queue[1:]
		w.mu.Unlock()
		select {
		case w.out <- batch:
		case <-w.stop:
			return
		}
	}
}

func (w *fakeWatch) Batches() <-chan WatchBatch { return w.out }

func (w *fakeWatch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// RequestProgress queues a progress batch behind the events already queued;
// under the backend lock, so that no write slips in between.
func (w *fakeWatch) RequestProgress() {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	w.push(WatchBatch{Revision: w.b.rev}, false)
}

func (w *fakeWatch) Close() {
	w.closeOnce.Do(func() {
		close(w.stop)
		w.b.mu.Lock()
		delete(w.b.watches, w)
		w.b.watchesClosed++
		w.b.mu.Unlock()
	})
}
