package runtime

import (
	"context"
	"sync"
	"time"

	"github.com/tenfold/tenfold/core"
	"github.com/tenfold/tenfold/core/watch"
	"github.com/tenfold/tenfold/gateway"
	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// watchHub drives the node's watch.Hub (all decisions are there) from the
// loop goroutine: it submits the hub's CLOSE requests to the core, hands
// their answers and the core's applied events back, and moves the hub's
// batches onto each watch's channel.
type watchHub struct {
	n   *Node
	hub *watch.Hub
	// watches are the open watches by hub ID, created ones and those
	// waiting for their start.
	watches map[watch.ID]*watchStream
	// closes maps a core request ID to the hub's reference for it.
	closes map[uint64]uint64
}

// watchStream is one watch as the gateway sees it.
type watchStream struct {
	hub     *watchHub
	id      watch.ID
	start   int64
	created chan error // gets the creation's outcome, once (buffered)
	ch      chan gateway.WatchBatch
	mu      sync.Mutex
	err     error
	ended   bool
}

func newWatchHub(n *Node) *watchHub {
	return &watchHub{n: n, hub: watch.New(watch.Config{Engine: n.eng, Ranges: n.core}),
		watches: map[watch.ID]*watchStream{}, closes: map[uint64]uint64{}}
}

// create starts a watch and waits until its start is settled (for a watch
// from now, a CLOSE of its range through the core).
func (h *watchHub) create(ctx context.Context, r *pb.WatchCreateRequest) (gateway.Watch, error) {
	w := &watchStream{hub: h, created: make(chan error, 1), ch: make(chan gateway.WatchBatch, watchBuffer)}
	req := watch.Request{Key: r.Key, End: r.RangeEnd, Start: r.StartRevision, PrevKV: r.PrevKv}
	if err := h.n.do(ctx, func() {
		w.id = h.hub.Create(req, time.Now())
		h.watches[w.id] = w
		h.flush()
	}); err != nil {
		return nil, toStatus(err)
	}
	select {
	case err := <-w.created:
		if err != nil {
			return nil, err
		}
		return w, nil
	case <-ctx.Done():
		w.Close()
		return nil, toStatus(ctx.Err())
	case <-h.n.stop:
		return nil, errStopping
	}
}

// flush carries out what the hub decided (loop goroutine only).
func (h *watchHub) flush() {
	out := h.hub.Ready()
	n := h.n
	for _, c := range out.Closes {
		id := n.nextID.Add(1)
		h.closes[id] = c.Ref
		n.core.Submit(core.ClientRequest{ID: id, Kind: tenfoldpb.RequestKind_CLOSE, RangeID: c.RangeID, Msg: &pb.RangeRequest{}, Deadline: c.Deadline})
	}
	for _, c := range out.Created {
		w := h.watches[c.Watch]
		if w == nil {
			continue
		}
		if c.Err != nil {
			delete(h.watches, c.Watch)
		}
		w.start = c.Start
		w.created <- c.Err
	}
	for _, b := range out.Batches {
		w := h.watches[b.Watch]
		if w == nil {
			continue
		}
		if !w.push(gateway.WatchBatch{Events: b.Events, Revision: b.Revision, CompactRevision: b.CompactRevision}) {
			h.hub.Cancel(b.Watch)
			delete(h.watches, b.Watch)
			continue
		}
		if b.End {
			delete(h.watches, b.Watch)
			w.end(b.Err)
		}
	}
	if len(out.Closes) > 0 {
		// The core gets the new requests at the loop's next Ready; make
		// sure there is one soon. (The loop itself sends: never block.)
		select {
		case n.calls <- func() {}:
		default:
		}
	}
}

// result takes the answer to one of the hub's CLOSE requests, if r is one
// (loop goroutine only).
func (h *watchHub) result(r core.Result) {
	ref, ok := h.closes[r.ID]
	if !ok {
		return
	}
	delete(h.closes, r.ID)
	var rev int64
	if resp, ok := r.Resp.(*pb.RangeResponse); ok && r.Err == nil {
		rev = resp.GetHeader().GetRevision()
	}
	h.hub.Closed(ref, rev, r.Err, time.Now())
}

// applied hands the core's applied events to the hub.
func (h *watchHub) applied(as []core.Applied) {
	h.hub.Applied(as)
}

func (h *watchHub) closeAll() {
	for id, w := range h.watches {
		select {
		case w.created <- errStopping:
		default:
		}
		w.end(errStopping)
		h.hub.Cancel(id)
		delete(h.watches, id)
	}
}

// push queues a batch; a full buffer ends the watch.
func (w *watchStream) push(b gateway.WatchBatch) bool {
	select {
	case w.ch <- b:
		return true
	default:
		w.end(status.Errorf(codes.ResourceExhausted, "tenfold: watcher fell %d batches behind and was ended; re-watch from the revision after its last event", watchBuffer))
		return false
	}
}

// end closes the watch's channel once (loop goroutine only).
func (w *watchStream) end(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return
	}
	w.ended, w.err = true, err
	close(w.ch)
}

// Start implements gateway.Watch.
func (w *watchStream) Start() int64 { return w.start }

// Batches implements gateway.Watch.
func (w *watchStream) Batches() <-chan gateway.WatchBatch { return w.ch }

// Err implements gateway.Watch.
func (w *watchStream) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// RequestProgress implements gateway.Watch: the hub closes the watched
// range up to the store's current revision (an empty write cycle, which
// also wakes a quiesced range) and sends a progress notification once the
// local replica has resolved that far. It does not block.
func (w *watchStream) RequestProgress() {
	h := w.hub
	go func() {
		_ = h.n.do(context.Background(), func() {
			if h.watches[w.id] == w {
				h.hub.RequestProgress(w.id, time.Now())
				h.flush()
			}
		})
	}()
}

// Close implements gateway.Watch.
func (w *watchStream) Close() {
	h := w.hub
	_ = h.n.do(context.Background(), func() {
		if h.watches[w.id] == w {
			h.hub.Cancel(w.id)
			delete(h.watches, w.id)
		}
		w.end(nil)
	})
}
