package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/status"
)

// Watch streams
//
// One gRPC stream carries many watches. Per stream the gateway runs:
//   - the receive loop (create, cancel, progress requests), in order;
//   - one sender goroutine, the only caller of Send, fed by a bounded queue,
//     so responses of different watches never interleave mid-message and a
//     slow client pushes back on the watches instead of growing memory;
//   - one forwarder goroutine per watch, turning Backend batches into
//     responses on the queue;
//   - a ticker goroutine for progress_notify, started by the first watch
//     that asks for it.
//
// Every watch ends with exactly one final response (a cancel, a compaction
// or a backend error), sent by whoever removes it from the stream's table,
// and that party also calls Close, exactly once. When the stream ends every
// watch is closed and every goroutine but the receive loop is waited for;
// the receive loop ends when gRPC cancels the stream after the handler
// returns.
//
// What the gateway needs from a Backend's Watch, beyond backend.go:
//   - Batches is closed soon after Close, and Close does not wait for the
//     channel to be drained (the gateway may stop reading once it closes);
//   - RequestProgress does not block on delivery, and it and Close are safe
//     to call concurrently and after the watch has ended;
//   - a progress batch carries the revision in Revision (clients ignore a
//     progress notification at revision 0);
//   - for a request without a start revision, Watch settles "now" itself
//     (at or above every acknowledged write) and Start reports it: the
//     gateway's Header may be a stale local view, so it does not pin it.

// Errors etcd's mvcc watch stream gives for bad create requests; clients
// see their text as the cancel reason.
var (
	errWatchDuplicateID = errors.New("mvcc: duplicate watch ID provided on the WatchStream")
	errWatchEmptyRange  = errors.New("mvcc: watcher range is empty")
	errWatchNil         = errors.New("tenfold: backend returned no watch")
	errWatchEnded       = errors.New("tenfold: watch ended by the backend")
)

// invalidWatchID marks a failed create, and a progress response for all the
// stream's watches (clientv3's InvalidWatchID).
const invalidWatchID = -1

// watchServer serves etcdserverpb.Watch.
type watchServer struct {
	pb.UnimplementedWatchServer
	b   Backend
	cfg Config
}

// Watch serves one watch stream until the client goes away or the stream
// breaks. A client that half-closes keeps receiving events, as in etcd.
func (s *watchServer) Watch(stream pb.Watch_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	ws := &watchStream{
		b:       s.b,
		cfg:     s.cfg,
		stream:  stream,
		ctx:     ctx,
		sendc:   make(chan *pb.WatchResponse, s.cfg.WatchSendQueueLen),
		watches: make(map[int64]*streamWatch),
	}
	return ws.serve(cancel)
}

// watchStream is the state of one Watch stream.
type watchStream struct {
	b      Backend
	cfg    Config
	stream pb.Watch_WatchServer
	ctx    context.Context // done when the stream ends
	sendc  chan *pb.WatchResponse

	mu            sync.Mutex
	watches       map[int64]*streamWatch
	nextID        int64 // next automatic watch ID; IDs are not reused, as in etcd
	closed        bool  // no more watches may be added
	tickerStarted bool
	wg            sync.WaitGroup // forwarders and the ticker
}

// streamWatch is one watch of a stream.
type streamWatch struct {
	id             int64
	w              Watch
	noPut          bool
	noDelete       bool
	progressNotify bool
	base           *pb.ResponseHeader // cluster, member and term for this watch's responses

	ended            atomic.Bool // removed from the table; later batches are dropped
	progressPending  atomic.Bool // the gateway asked for progress; forward the next empty batch
	eventsSinceTick  atomic.Bool // events were sent since the last progress tick
	forwarderStopped chan struct{}
}

// serve runs the stream and cleans up after it.
func (ws *watchStream) serve(cancel context.CancelFunc) error {
	sendErr := make(chan error, 1)
	go func() { sendErr <- ws.sendLoop() }()
	recvErr := make(chan error, 1)
	go func() { recvErr <- ws.recvLoop() }()

	var err error
	senderDone := false
	for err == nil {
		select {
		case rerr := <-recvErr:
			// nil means the client half-closed: keep sending.
			err, recvErr = rerr, nil
		case err = <-sendErr:
			senderDone = true
		case <-ws.ctx.Done():
			err = ws.ctx.Err()
		}
	}

	cancel()
	ws.closeAll()
	if !senderDone {
		<-sendErr
	}
	return toGRPCError(err)
}

// sendLoop is the only sender on the stream.
func (ws *watchStream) sendLoop() error {
	for {
		select {
		case resp := <-ws.sendc:
			if err := ws.stream.Send(resp); err != nil {
				return err
			}
		case <-ws.ctx.Done():
			return ws.ctx.Err()
		}
	}
}

// enqueue queues resp for the sender; false when the stream has ended.
func (ws *watchStream) enqueue(resp *pb.WatchResponse) bool {
	select {
	case ws.sendc <- resp:
		return true
	case <-ws.ctx.Done():
		return false
	}
}

// recvLoop handles the client's requests in order. Unknown requests are
// ignored rather than ending the stream, as etcd does.
func (ws *watchStream) recvLoop() error {
	for {
		req, err := ws.stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch u := req.GetRequestUnion().(type) {
		case *pb.WatchRequest_CreateRequest:
			if u.CreateRequest != nil {
				err = ws.create(u.CreateRequest)
			}
		case *pb.WatchRequest_CancelRequest:
			if u.CancelRequest != nil {
				err = ws.cancelWatch(u.CancelRequest.GetWatchId())
			}
		case *pb.WatchRequest_ProgressRequest:
			err = ws.requestProgress()
		}
		if err != nil {
			return err
		}
	}
}

// create starts a watch and answers with a created response, or with a
// created-and-canceled one (watch ID -1 and a reason) when it cannot. It
// fails only when the stream has ended.
func (ws *watchStream) create(creq *pb.WatchCreateRequest) error {
	// The header's cluster, member and term; for a watch from now its
	// revision is replaced by the one the watch starts after.
	hdr, err := ws.b.Header(ws.ctx)
	if err != nil {
		return ws.createFailed(&pb.ResponseHeader{}, err)
	}
	if len(creq.Key) == 0 {
		// etcd's historical rule: an empty key is the smallest key.
		creq.Key = []byte{0}
	}
	// range_end "\x00" means every key from key on, so it is never "below" key.
	fromKey := len(creq.RangeEnd) == 1 && creq.RangeEnd[0] == 0
	if len(creq.RangeEnd) != 0 && !fromKey && bytes.Compare(creq.Key, creq.RangeEnd) >= 0 {
		return ws.createFailed(hdr, errWatchEmptyRange)
	}

	ws.mu.Lock()
	id := creq.WatchId
	if id == 0 { // 0 asks the server to choose, as in etcd
		for ws.watches[ws.nextID] != nil {
			ws.nextID++
		}
		id = ws.nextID
		ws.nextID++
	} else if ws.watches[id] != nil {
		ws.mu.Unlock()
		return ws.createFailed(hdr, errWatchDuplicateID)
	}
	ws.mu.Unlock()

	creq.WatchId = id
	fromNow := creq.StartRevision == 0
	w, err := ws.b.Watch(ws.ctx, creq)
	if err == nil && w == nil {
		err = errWatchNil
	}
	if err != nil {
		return ws.createFailed(hdr, err)
	}
	if fromNow {
		// The backend chose "now" (at or above every acknowledged write);
		// the created response reports it, as etcd reports the store
		// revision the watch starts after.
		hdr = copyHeader(hdr)
		hdr.Revision = w.Start() - 1
	}

	sw := &streamWatch{
		id:               id,
		w:                w,
		progressNotify:   creq.ProgressNotify,
		base:             copyHeader(hdr),
		forwarderStopped: make(chan struct{}),
	}
	for _, f := range creq.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			sw.noPut = true
		case pb.WatchCreateRequest_NODELETE:
			sw.noDelete = true
		}
	}
	// Created goes on the queue before the forwarder starts, so it precedes
	// the watch's first event.
	if !ws.enqueue(&pb.WatchResponse{Header: hdr, WatchId: id, Created: true}) {
		w.Close()
		return ws.ctx.Err()
	}
	ws.mu.Lock()
	if ws.closed {
		ws.mu.Unlock()
		w.Close()
		return ws.ctx.Err()
	}
	ws.watches[id] = sw
	ws.wg.Add(1)
	if sw.progressNotify && !ws.tickerStarted {
		ws.tickerStarted = true
		ws.wg.Add(1)
		go ws.tickLoop()
	}
	ws.mu.Unlock()
	go ws.forward(sw)
	return nil
}

// createFailed answers a create that did not start a watch.
func (ws *watchStream) createFailed(hdr *pb.ResponseHeader, err error) error {
	resp := &pb.WatchResponse{
		Header:       hdr,
		WatchId:      invalidWatchID,
		Created:      true,
		Canceled:     true,
		CancelReason: cancelReason(err),
	}
	if !ws.enqueue(resp) {
		return ws.ctx.Err()
	}
	return nil
}

// cancelWatch ends a watch at the client's request. An unknown ID gets no
// answer, as in etcd (the watch may have just ended on its own, and then
// its final response is already on its way).
func (ws *watchStream) cancelWatch(id int64) error {
	sw := ws.remove(id, nil)
	if sw == nil {
		return nil
	}
	sw.w.Close()
	// Everything the forwarder queued precedes the canceled response.
	<-sw.forwarderStopped
	if !ws.enqueue(&pb.WatchResponse{Header: ws.currentHeader(sw), WatchId: id, Canceled: true}) {
		return ws.ctx.Err()
	}
	return nil
}

// requestProgress asks every watch of the stream for progress; each answers
// with a progress response under its own ID. With no watches it answers at
// once with the store revision under ID -1, which clientv3 broadcasts, as
// etcd does when all of a stream's watches are synced.
func (ws *watchStream) requestProgress() error {
	watches := ws.list(false)
	if len(watches) == 0 {
		hdr, err := ws.b.Header(ws.ctx)
		if err != nil {
			// A progress request has no error response; the client asks again.
			return nil
		}
		if !ws.enqueue(&pb.WatchResponse{Header: hdr, WatchId: invalidWatchID}) {
			return ws.ctx.Err()
		}
		return nil
	}
	for _, sw := range watches {
		sw.progressPending.Store(true)
		sw.w.RequestProgress()
	}
	return nil
}

// tickLoop sends periodic progress notifications to the watches that asked
// for them and had no events since the previous tick, as etcd does.
func (ws *watchStream) tickLoop() {
	defer ws.wg.Done()
	t := time.NewTicker(ws.cfg.ProgressNotifyInterval)
	defer t.Stop()
	for {
		select {
		case <-ws.ctx.Done():
			return
		case <-t.C:
			for _, sw := range ws.list(true) {
				if !sw.eventsSinceTick.Swap(false) {
					sw.progressPending.Store(true)
					sw.w.RequestProgress()
				}
			}
		}
	}
}

// forward turns the watch's batches into responses until its channel is
// closed. A watch that ends on its own (compaction, backend error) is
// removed here and gets its final response from here.
func (ws *watchStream) forward(sw *streamWatch) {
	defer ws.wg.Done()
	defer close(sw.forwarderStopped)
	for batch := range sw.w.Batches() {
		if sw.ended.Load() {
			continue // drain until the backend closes the channel
		}
		if batch.CompactRevision != 0 {
			if ws.remove(sw.id, sw) != nil {
				ws.enqueue(&pb.WatchResponse{
					Header:          sw.header(batch.Revision),
					WatchId:         sw.id,
					CompactRevision: batch.CompactRevision,
					Canceled:        true,
				})
				sw.w.Close()
			}
			continue
		}
		if resp := sw.response(batch); resp != nil {
			ws.enqueue(resp)
		}
	}
	if ws.remove(sw.id, sw) != nil {
		err := sw.w.Err()
		if err == nil {
			err = errWatchEnded
		}
		ws.enqueue(&pb.WatchResponse{
			Header:       ws.currentHeader(sw),
			WatchId:      sw.id,
			Canceled:     true,
			CancelReason: cancelReason(err),
		})
		sw.w.Close()
	}
}

// response builds the response for one batch, or nil when there is nothing
// to send: progress nobody asked for, or events all filtered out (etcd sends
// nothing then either).
func (sw *streamWatch) response(batch WatchBatch) *pb.WatchResponse {
	if len(batch.Events) == 0 {
		if !sw.progressPending.Swap(false) {
			return nil
		}
		return &pb.WatchResponse{Header: sw.header(batch.Revision), WatchId: sw.id}
	}
	events := batch.Events
	if sw.noPut || sw.noDelete {
		// A new slice: the backend may share its slice between watches.
		events = make([]*mvccpb.Event, 0, len(batch.Events))
		for _, ev := range batch.Events {
			if (ev.Type == mvccpb.Event_PUT && sw.noPut) || (ev.Type == mvccpb.Event_DELETE && sw.noDelete) {
				continue
			}
			events = append(events, ev)
		}
		if len(events) == 0 {
			return nil
		}
	}
	sw.eventsSinceTick.Store(true)
	return &pb.WatchResponse{Header: sw.header(batch.Revision), WatchId: sw.id, Events: events}
}

// remove takes watch id out of the table and marks it ended; when want is
// set, only if id is still that watch. It returns the removed watch, or nil
// when someone else already removed it: the caller that gets it owns the
// final response and the Close.
func (ws *watchStream) remove(id int64, want *streamWatch) *streamWatch {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	sw := ws.watches[id]
	if sw == nil || (want != nil && sw != want) {
		return nil
	}
	delete(ws.watches, id)
	sw.ended.Store(true)
	return sw
}

// list returns the stream's watches (only the progress_notify ones when
// progressOnly), so that backend calls happen outside the lock.
func (ws *watchStream) list(progressOnly bool) []*streamWatch {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	out := make([]*streamWatch, 0, len(ws.watches))
	for _, sw := range ws.watches {
		if !progressOnly || sw.progressNotify {
			out = append(out, sw)
		}
	}
	return out
}

// closeAll ends every watch when the stream ends and waits for the
// forwarders and the ticker. The stream's context is already canceled, so
// nothing is sent any more.
func (ws *watchStream) closeAll() {
	ws.mu.Lock()
	ws.closed = true
	watches := ws.watches
	ws.watches = make(map[int64]*streamWatch)
	ws.mu.Unlock()
	for _, sw := range watches {
		sw.ended.Store(true)
		sw.w.Close()
	}
	ws.wg.Wait()
}

// currentHeader is the header for a watch's final response: the store's
// current one, or the watch's own if the backend cannot give one now (the
// response must go out regardless).
func (ws *watchStream) currentHeader(sw *streamWatch) *pb.ResponseHeader {
	if hdr, err := ws.b.Header(ws.ctx); err == nil && hdr != nil {
		return hdr
	}
	return sw.header(sw.base.GetRevision())
}

// header is the header of a response at revision rev.
func (sw *streamWatch) header(rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{
		ClusterId: sw.base.GetClusterId(),
		MemberId:  sw.base.GetMemberId(),
		RaftTerm:  sw.base.GetRaftTerm(),
		Revision:  rev,
	}
}

// copyHeader copies h (nil gives an empty header).
func copyHeader(h *pb.ResponseHeader) *pb.ResponseHeader {
	return &pb.ResponseHeader{
		ClusterId: h.GetClusterId(),
		MemberId:  h.GetMemberId(),
		RaftTerm:  h.GetRaftTerm(),
		Revision:  h.GetRevision(),
	}
}

// cancelReason is the text clients get for err: the status message, so
// that clientv3 maps etcd's own errors back to its rpctypes values.
func cancelReason(err error) string {
	return status.Convert(toGRPCError(err)).Message()
}
