package gateway

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestWatchThroughClient(t *testing.T) {
	b := newFakeBackend()
	cli := newClient(t, startServer(t, b, Config{}))
	ctx := testContext(t)

	first, err := cli.Put(ctx, "w/0", "old")
	if err != nil {
		t.Fatal(err)
	}

	wctx, wcancel := context.WithCancel(ctx)
	wch := cli.Watch(wctx, "w/", clientv3.WithPrefix(), clientv3.WithCreatedNotify(), clientv3.WithPrevKV())
	created := <-wch
	if !created.Created || created.Header.Revision != first.Header.Revision {
		t.Fatalf("created response %+v, want Created at revision %d", created, first.Header.Revision)
	}

	for i, kv := range [][2]string{{"w/1", "a"}, {"other", "x"}, {"w/0", "new"}} {
		if _, err := cli.Put(ctx, kv[0], kv[1]); err != nil {
			t.Fatal(i, err)
		}
	}
	if _, err := cli.Delete(ctx, "w/1"); err != nil {
		t.Fatal(err)
	}
	var events []*clientv3.Event
	for len(events) < 3 {
		select {
		case resp := <-wch:
			if err := resp.Err(); err != nil {
				t.Fatal(err)
			}
			events = append(events, resp.Events...)
		case <-ctx.Done():
			t.Fatalf("got %d events, want 3", len(events))
		}
	}
	want := []struct {
		typ       mvccpb.Event_EventType
		key, prev string
	}{{mvccpb.Event_PUT, "w/1", ""}, {mvccpb.Event_PUT, "w/0", "old"}, {mvccpb.Event_DELETE, "w/1", "a"}}
	for i, ev := range events {
		prev := ""
		if ev.PrevKv != nil {
			prev = string(ev.PrevKv.Value)
		}
		if ev.Type != want[i].typ || string(ev.Kv.Key) != want[i].key || prev != want[i].prev {
			t.Fatalf("event %d = %v %s prev %q, want %v", i, ev.Type, ev.Kv.Key, prev, want[i])
		}
	}

	// A progress request reaches the watch as a progress notification at
	// the current revision.
	cur, err := cli.Get(ctx, "nothing")
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.RequestProgress(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case resp := <-wch:
		if !resp.IsProgressNotify() || resp.Header.Revision != cur.Header.Revision {
			t.Fatalf("progress response %+v, want progress at %d", resp, cur.Header.Revision)
		}
	case <-ctx.Done():
		t.Fatal("no progress notification")
	}

	// Watching from an old revision replays history; below the compaction
	// the watch gets ErrCompacted.
	hist := cli.Watch(ctx, "w/0", clientv3.WithRev(first.Header.Revision))
	if resp := <-hist; len(resp.Events) != 1 || string(resp.Events[0].Kv.Value) != "old" {
		t.Fatalf("history replay %+v", resp)
	}
	if _, err := cli.Compact(ctx, cur.Header.Revision); err != nil {
		t.Fatal(err)
	}
	comp := cli.Watch(ctx, "w/0", clientv3.WithRev(first.Header.Revision))
	if resp := <-comp; resp.CompactRevision != cur.Header.Revision || resp.Err() != rpctypes.ErrCompacted {
		t.Fatalf("compacted watch %+v, err %v", resp, resp.Err())
	}

	// Cancelling closes the channel; the backend's watches are all closed.
	wcancel()
	for range wch {
	}
	waitFor(t, "backend watches closed", func() bool { return b.openWatches() == 1 }) // hist is still open
}

// waitFor polls cond until it holds, failing the test after testTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawWatch is a watch stream driven by hand, for protocol details clientv3
// hides.
type rawWatch struct {
	t      *testing.T
	stream pb.Watch_WatchClient
	cancel context.CancelFunc
	resps  chan *pb.WatchResponse
}

func newRawWatch(t *testing.T, addr string) *rawWatch {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	stream, err := pb.NewWatchClient(newConn(t, addr)).Watch(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	rw := &rawWatch{t: t, stream: stream, cancel: cancel, resps: make(chan *pb.WatchResponse, 1000)}
	go func() {
		defer close(rw.resps)
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			rw.resps <- resp
		}
	}()
	t.Cleanup(cancel)
	return rw
}

func (rw *rawWatch) send(req *pb.WatchRequest) {
	rw.t.Helper()
	if err := rw.stream.Send(req); err != nil {
		rw.t.Fatal(err)
	}
}

func (rw *rawWatch) create(c *pb.WatchCreateRequest) {
	rw.t.Helper()
	rw.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: c}})
}

func (rw *rawWatch) cancelID(id int64) {
	rw.t.Helper()
	rw.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: id}}})
}

func (rw *rawWatch) progress() {
	rw.t.Helper()
	rw.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}})
}

func (rw *rawWatch) next() *pb.WatchResponse {
	rw.t.Helper()
	select {
	case resp, ok := <-rw.resps:
		if !ok {
			rw.t.Fatal("watch stream ended")
		}
		return resp
	case <-time.After(testTimeout):
		rw.t.Fatal("no watch response")
	}
	return nil
}

// created reads the next response and checks it is a successful create.
func (rw *rawWatch) created() *pb.WatchResponse {
	rw.t.Helper()
	resp := rw.next()
	if !resp.Created || resp.Canceled {
		rw.t.Fatalf("want a created response, got %v", resp)
	}
	return resp
}

func TestWatchCreateIDsAndErrors(t *testing.T) {
	b := newFakeBackend()
	rw := newRawWatch(t, startServer(t, b, Config{}))
	ctx := testContext(t)
	hdr, _ := b.Header(ctx)

	rw.create(&pb.WatchCreateRequest{Key: []byte("a")})
	if r := rw.created(); r.WatchId != 0 || r.Header.Revision != hdr.Revision || r.Header.ClusterId != 1 {
		t.Fatalf("first automatic watch: %v", r)
	}
	// A watch from now reaches the backend without a start revision: the
	// backend settles "now" (the gateway's own idea of it may be stale).
	if got := b.lastWatchReq.StartRevision; got != 0 {
		t.Fatalf("backend start revision %d, want 0 (from now)", got)
	}
	rw.create(&pb.WatchCreateRequest{Key: []byte("a"), WatchId: 7})
	if r := rw.created(); r.WatchId != 7 {
		t.Fatalf("explicit ID 7: %v", r)
	}
	rw.create(&pb.WatchCreateRequest{Key: []byte("a")})
	if r := rw.created(); r.WatchId != 1 {
		t.Fatalf("second automatic watch: %v", r)
	}
	rw.create(&pb.WatchCreateRequest{}) // empty key means "\x00"
	rw.created()
	if got := string(b.lastWatchReq.Key); got != "\x00" {
		t.Fatalf("backend key %q, want \\x00", got)
	}

	failures := []struct {
		name   string
		req    *pb.WatchCreateRequest
		reason string
	}{
		{"duplicate ID", &pb.WatchCreateRequest{Key: []byte("a"), WatchId: 7}, errWatchDuplicateID.Error()},
		{"range end below key", &pb.WatchCreateRequest{Key: []byte("b"), RangeEnd: []byte("a")}, errWatchEmptyRange.Error()},
		{"range end equal to key", &pb.WatchCreateRequest{Key: []byte("b"), RangeEnd: []byte("b")}, errWatchEmptyRange.Error()},
	}
	for _, f := range failures {
		rw.create(f.req)
		r := rw.next()
		if !r.Created || !r.Canceled || r.WatchId != invalidWatchID || r.CancelReason != f.reason {
			t.Fatalf("%s: %v, want created+canceled, ID -1, reason %q", f.name, r, f.reason)
		}
	}
	// range_end "\x00" means "from key on", never an empty range.
	rw.create(&pb.WatchCreateRequest{Key: []byte("b"), RangeEnd: []byte{0}})
	rw.created()

	// A backend error at creation is the cancel reason, as its status text,
	// which clientv3 maps back to the rpctypes error.
	b.mu.Lock()
	b.watchErr = rpctypes.ErrGRPCNoLeader
	b.mu.Unlock()
	rw.create(&pb.WatchCreateRequest{Key: []byte("a")})
	if r := rw.next(); !r.Canceled || r.WatchId != invalidWatchID || rpctypes.Error(fmt.Errorf("%s", r.CancelReason)) != rpctypes.ErrNoLeader {
		t.Fatalf("backend create error: %v", r)
	}
}

// TestWatchFromNowReportsBackendStart: a watch from now is created at the
// revision the backend started it after, not at the gateway's Header, which
// may lag behind acknowledged writes; the watch delivers none of them.
func TestWatchFromNowReportsBackendStart(t *testing.T) {
	b := newFakeBackend()
	addr := startServer(t, b, Config{})
	cli := newClient(t, addr)
	rw := newRawWatch(t, addr)
	ctx := testContext(t)
	var last int64
	for i := range 3 {
		p, err := cli.Put(ctx, "k", fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		last = p.Header.Revision
	}
	b.mu.Lock()
	b.headerLag = 2
	b.mu.Unlock()
	rw.create(&pb.WatchCreateRequest{Key: []byte("k")})
	if r := rw.created(); r.Header.Revision != last {
		t.Fatalf("created at revision %d, want %d (the last acknowledged write)", r.Header.Revision, last)
	}
	p, err := cli.Put(ctx, "k", "after")
	if err != nil {
		t.Fatal(err)
	}
	if r := rw.next(); len(r.Events) != 1 || r.Events[0].Kv.ModRevision != p.Header.Revision {
		t.Fatalf("first event %v, want only the put at %d", r.Events, p.Header.Revision)
	}
}

func TestWatchFiltersCancelAndProgress(t *testing.T) {
	b := newFakeBackend()
	addr := startServer(t, b, Config{})
	rw := newRawWatch(t, addr)
	cli := newClient(t, addr)
	ctx := testContext(t)

	// Progress with no watches: one response for the whole stream.
	rw.progress()
	if r := rw.next(); r.WatchId != invalidWatchID || r.Header.Revision != 1 || r.Created || r.Canceled || len(r.Events) != 0 {
		t.Fatalf("progress with no watches: %v", r)
	}

	rw.create(&pb.WatchCreateRequest{Key: []byte("f"), Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT}})
	noPut := rw.created().WatchId
	rw.create(&pb.WatchCreateRequest{Key: []byte("f"), Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NODELETE}})
	noDel := rw.created().WatchId

	if _, err := cli.Put(ctx, "f", "1"); err != nil {
		t.Fatal(err)
	}
	del, err := cli.Delete(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64][]mvccpb.Event_EventType{}
	for i := 0; i < 2; i++ {
		r := rw.next()
		for _, ev := range r.Events {
			got[r.WatchId] = append(got[r.WatchId], ev.Type)
		}
	}
	if fmt.Sprint(got[noPut]) != "[DELETE]" || fmt.Sprint(got[noDel]) != "[PUT]" {
		t.Fatalf("filtered events %v (NOPUT watch %d, NODELETE watch %d)", got, noPut, noDel)
	}

	// A progress request is answered by each watch at the current revision.
	rw.progress()
	progressed := map[int64]bool{}
	for i := 0; i < 2; i++ {
		r := rw.next()
		if len(r.Events) != 0 || r.Canceled || r.Header.Revision != del.Header.Revision {
			t.Fatalf("progress response %v, want none at revision %d", r, del.Header.Revision)
		}
		progressed[r.WatchId] = true
	}
	if !progressed[noPut] || !progressed[noDel] {
		t.Fatalf("progress responses for %v, want both watches", progressed)
	}

	// Batches whose events are all filtered out send nothing: the next two
	// responses are the NODELETE watch's put and the NOPUT watch's delete.
	if _, err := cli.Put(ctx, "f", "2"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	got = map[int64][]mvccpb.Event_EventType{}
	for i := 0; i < 2; i++ { // different watches: either order
		r := rw.next()
		if len(r.Events) == 0 {
			t.Fatalf("empty response %v for filtered-out events", r)
		}
		for _, ev := range r.Events {
			got[r.WatchId] = append(got[r.WatchId], ev.Type)
		}
	}
	if fmt.Sprint(got[noPut]) != "[DELETE]" || fmt.Sprint(got[noDel]) != "[PUT]" {
		t.Fatalf("filtered events %v (NOPUT watch %d, NODELETE watch %d)", got, noPut, noDel)
	}

	// Cancel answers with Canceled; an unknown ID gets no answer, so the
	// next response is the create sent after it.
	rw.cancelID(noPut)
	if r := rw.next(); !r.Canceled || r.WatchId != noPut || r.CancelReason != "" {
		t.Fatalf("cancel response %v", r)
	}
	rw.cancelID(999)
	rw.create(&pb.WatchCreateRequest{Key: []byte("g")})
	rw.created()
	if n := b.openWatches(); n != 2 {
		t.Fatalf("%d backend watches open, want 2", n)
	}
}

func TestWatchEndedByBackend(t *testing.T) {
	b := newFakeBackend()
	addr := startServer(t, b, Config{})
	rw := newRawWatch(t, addr)
	cli := newClient(t, addr)
	ctx := testContext(t)

	for i := 0; i < 3; i++ {
		if _, err := cli.Put(ctx, "c", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Compact(ctx, 3); err != nil {
		t.Fatal(err)
	}
	rw.create(&pb.WatchCreateRequest{Key: []byte("c"), StartRevision: 2})
	id := rw.created().WatchId
	if r := rw.next(); r.WatchId != id || !r.Canceled || r.CompactRevision != 3 || len(r.Events) != 0 {
		t.Fatalf("compacted response %v", r)
	}
	waitFor(t, "compacted watch closed", func() bool { return b.openWatches() == 0 })

	rw.create(&pb.WatchCreateRequest{Key: []byte("c")})
	id = rw.created().WatchId
	b.failWatches(rpctypes.ErrGRPCNoLeader)
	r := rw.next()
	if r.WatchId != id || !r.Canceled || r.CancelReason != rpctypes.ErrorDesc(rpctypes.ErrGRPCNoLeader) {
		t.Fatalf("backend error response %v", r)
	}
	waitFor(t, "failed watch closed", func() bool { return b.openWatches() == 0 })
	// The ended watch is gone: cancelling it now gets no answer.
	rw.cancelID(id)
	rw.progress()
	if r := rw.next(); r.WatchId != invalidWatchID {
		t.Fatalf("after the failed watch ended: %v, want a stream-wide progress response", r)
	}
}

// TestWatchDropsUnrequestedProgress checks that an empty batch nobody
// asked for (neither the client nor the progress_notify ticker) does not
// reach the client, which would read it as a progress notification.
func TestWatchDropsUnrequestedProgress(t *testing.T) {
	b := newFakeBackend()
	addr := startServer(t, b, Config{})
	rw := newRawWatch(t, addr)
	cli := newClient(t, addr)
	ctx := testContext(t)

	rw.create(&pb.WatchCreateRequest{Key: []byte("u")})
	id := rw.created().WatchId
	b.unsolicitedProgress()
	put, err := cli.Put(ctx, "u", "1")
	if err != nil {
		t.Fatal(err)
	}
	if r := rw.next(); r.WatchId != id || len(r.Events) != 1 || r.Header.Revision != put.Header.Revision {
		t.Fatalf("want the put at revision %d, got %v", put.Header.Revision, r)
	}
}

func TestWatchProgressNotify(t *testing.T) {
	b := newFakeBackend()
	rw := newRawWatch(t, startServer(t, b, Config{ProgressNotifyInterval: 10 * time.Millisecond}))

	rw.create(&pb.WatchCreateRequest{Key: []byte("quiet")})
	quiet := rw.created().WatchId
	rw.create(&pb.WatchCreateRequest{Key: []byte("p"), ProgressNotify: true})
	notified := rw.created().WatchId
	for i := 0; i < 3; i++ {
		r := rw.next()
		if r.WatchId != notified || len(r.Events) != 0 || r.Canceled || r.Header.Revision != 1 {
			t.Fatalf("periodic response %v, want progress for watch %d only (not %d)", r, notified, quiet)
		}
	}
}

// TestWatchManyWatchesOneStream runs many watches on one stream while
// writes race with them: each watch must see every event once, in order
// (and the race detector checks that sends are serialised).
func TestWatchManyWatchesOneStream(t *testing.T) {
	const watches, writes = 20, 50
	b := newFakeBackend()
	addr := startServer(t, b, Config{WatchSendQueueLen: 4})
	rw := newRawWatch(t, addr)
	cli := newClient(t, addr)
	ctx := testContext(t)

	for i := 0; i < watches; i++ {
		rw.create(&pb.WatchCreateRequest{Key: []byte("m/"), RangeEnd: []byte("m0")})
		rw.created()
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < writes; i++ {
			if _, err := cli.Put(ctx, fmt.Sprintf("m/%d", i), "v"); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	seen := map[int64][]string{}
	for n := 0; n < watches*writes; {
		r := rw.next()
		for _, ev := range r.Events {
			seen[r.WatchId] = append(seen[r.WatchId], string(ev.Kv.Key))
			n++
		}
	}
	wg.Wait()
	for id, keys := range seen {
		for i, k := range keys {
			if k != fmt.Sprintf("m/%d", i) {
				t.Fatalf("watch %d event %d is %s", id, i, k)
			}
		}
	}
	if len(seen) != watches {
		t.Fatalf("%d watches saw events, want %d", len(seen), watches)
	}
}

// TestWatchStreamCleanup ends streams with watches (some with progress
// tickers, some mid-delivery) and checks that every backend watch is
// closed and the goroutine count returns to where it was.
func TestWatchStreamCleanup(t *testing.T) {
	b := newFakeBackend()
	addr := startServer(t, b, Config{ProgressNotifyInterval: time.Millisecond})
	cli := newClient(t, addr)
	ctx := testContext(t)
	if _, err := cli.Put(ctx, "warm", "up"); err != nil {
		t.Fatal(err)
	}
	conn := newConn(t, addr)
	if _, err := pb.NewKVClient(conn).Range(ctx, &pb.RangeRequest{Key: []byte("warm")}); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()

	for round := 0; round < 3; round++ {
		sctx, cancel := context.WithCancel(ctx)
		stream, err := pb.NewWatchClient(conn).Watch(sctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
				Key: []byte("warm"), StartRevision: 1, ProgressNotify: i%2 == 0,
			}}}); err != nil {
				t.Fatal(err)
			}
		}
		if round == 1 {
			// Half-close: the server keeps the watches until the stream ends.
			if err := stream.CloseSend(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "five backend watches", func() bool { return b.openWatches() == 5 })
		cancel() // without reading the rest: the server's sends may be blocked
		waitFor(t, "backend watches closed", func() bool { return b.openWatches() == 0 })
	}
	waitFor(t, fmt.Sprintf("goroutines back to %d", before), func() bool { return runtime.NumGoroutine() <= before })
}
