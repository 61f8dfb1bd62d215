package runtime

import (
	"context"
	"sync"
	"time"

	"github.com/tenfold/tenfold/core"
	"github.com/tenfold/tenfold/gateway"
	"github.com/tenfold/tenfold/mvcc"
	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Watch limits.
const (
	// watchBuffer bounds batches queued to one watcher; a watcher that falls
	// this far behind is ended (it can resume from its last revision).
	watchBuffer = 1024
	// catchupPage bounds events read from history per step.
	catchupPage = 1000
)

// watchHub serves watches from this node's replicas. It lives on the loop
// goroutine, so catch-up from history and live events never interleave
// wrongly: a watch is registered in the same step that reads its history.
type watchHub struct {
	n       *Node
	watches map[*watch]bool
}

type watch struct {
	hub     *watchHub
	rangeID uint64
	span    core.Span
	prevKV  bool
	next    int64 // next revision to deliver
	// wantProgress: a progress notification is owed once the local replica
	// has resolved this revision (loop-owned).
	wantProgress int64
	ch           chan gateway.WatchBatch
	mu           sync.Mutex
	err          error
	ended        bool
}

func newWatchHub(n *Node) *watchHub { return &watchHub{n: n, watches: map[*watch]bool{}} }

func (h *watchHub) create(ctx context.Context, r *pb.WatchCreateRequest) (gateway.Watch, error) {
	var w *watch
	var err error
	if derr := h.n.do(ctx, func() { w, err = h.createLocked(r) }); derr != nil {
		return nil, derr
	}
	return w, err
}

func (h *watchHub) createLocked(r *pb.WatchCreateRequest) (*watch, error) {
	rangeID, resolved, compacted, err := h.n.core.WatchTarget(r.Key, r.RangeEnd)
	if err != nil {
		return nil, err
	}
	w := &watch{hub: h, rangeID: rangeID, span: core.EtcdSpan(r.Key, r.RangeEnd), prevKV: r.PrevKv, ch: make(chan gateway.WatchBatch, watchBuffer)}
	start := r.StartRevision
	if start <= 0 {
		start = resolved + 1
	}
	if start <= compacted && compacted > 0 {
		w.ch <- gateway.WatchBatch{CompactRevision: compacted}
		w.end(nil)
		return w, nil
	}
	w.next = start
	for w.next <= resolved {
		evs, next, err := mvcc.Events(h.n.eng, mvcc.Span{Start: w.span.Start, End: w.span.End}, w.next, resolved, catchupPage, w.prevKV)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "tenfold: read watch history: %v", err)
		}
		if len(evs) > 0 {
			if !w.push(gateway.WatchBatch{Events: evs, Revision: resolved}) {
				return w, nil
			}
		}
		if next <= w.next {
			break
		}
		w.next = next
	}
	w.next = max(w.next, resolved+1)
	h.watches[w] = true
	return w, nil
}

// applied delivers newly applied events to the watches of each range.
func (h *watchHub) applied(as []core.Applied) {
	for _, a := range as {
		for w := range h.watches {
			if w.rangeID != a.RangeID {
				continue
			}
			var evs []*mvccpb.Event
			for _, ev := range a.Events {
				if ev.Kv.ModRevision < w.next || !w.span.Contains(ev.Kv.Key) {
					continue
				}
				if !w.prevKV && ev.PrevKv != nil {
					ev = &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
				}
				evs = append(evs, ev)
			}
			if len(evs) > 0 {
				if !w.push(gateway.WatchBatch{Events: evs, Revision: a.Resolved}) {
					delete(h.watches, w)
					continue
				}
				w.next = evs[len(evs)-1].Kv.ModRevision + 1
			}
			if w.wantProgress > 0 && a.Resolved >= w.wantProgress {
				select {
				case w.ch <- gateway.WatchBatch{Revision: a.Resolved}:
					w.wantProgress = 0
				default:
				}
			}
		}
	}
}

func (h *watchHub) closeAll() {
	for w := range h.watches {
		w.end(errStopping)
		delete(h.watches, w)
	}
}

// push queues a batch; a full buffer ends the watch.
func (w *watch) push(b gateway.WatchBatch) bool {
	select {
	case w.ch <- b:
		return true
	default:
		w.end(status.Errorf(codes.ResourceExhausted, "tenfold: watcher fell %d batches behind and was ended; re-watch from revision %d", watchBuffer, w.next))
		return false
	}
}

// end closes the watch's channel once (loop goroutine only).
func (w *watch) end(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return
	}
	w.ended, w.err = true, err
	close(w.ch)
}

// Batches implements gateway.Watch.
func (w *watch) Batches() <-chan gateway.WatchBatch { return w.ch }

// Err implements gateway.Watch.
func (w *watch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// RequestProgress implements gateway.Watch. It asks the range's leader to
// close the range up to the store's current revision (an empty write cycle,
// which also wakes a quiesced range), and sends a progress notification
// once the local replica has applied that far: every event at or below the
// notified revision has then been delivered. It does not block.
func (w *watch) RequestProgress() {
	h := w.hub
	n := h.n
	go func() {
		ch := make(chan core.Result, 1)
		id := n.nextID.Add(1)
		err := n.do(context.Background(), func() {
			if !h.watches[w] {
				return
			}
			n.waiters[id] = ch
			n.core.Submit(core.ClientRequest{ID: id, Kind: tenfoldpb.RequestKind_CLOSE, RangeID: w.rangeID, Msg: &pb.RangeRequest{}, Deadline: time.Now().Add(progressTimeout)})
		})
		if err != nil {
			return
		}
		var rev int64
		select {
		case r := <-ch:
			if resp, ok := r.Resp.(*pb.RangeResponse); ok && r.Err == nil && resp.Header != nil {
				rev = resp.Header.Revision
			}
		case <-n.stop:
			return
		}
		_ = n.do(context.Background(), func() {
			if !h.watches[w] {
				return
			}
			w.wantProgress = max(rev, 1)
			h.deliverProgress(w)
		})
	}()
}

// progressTimeout bounds the close cycle behind one progress request.
const progressTimeout = 5 * time.Second

// deliverProgress sends an owed progress notification if the local replica
// has resolved far enough (loop goroutine only).
func (h *watchHub) deliverProgress(w *watch) {
	if w.wantProgress == 0 {
		return
	}
	for _, rs := range h.n.core.RangeStatuses() {
		if rs.RangeID == w.rangeID && rs.Closed >= w.wantProgress && rs.Closed >= w.next-1 {
			select {
			case w.ch <- gateway.WatchBatch{Revision: rs.Closed}:
				w.wantProgress = 0
			default:
			}
		}
	}
}

// Close implements gateway.Watch.
func (w *watch) Close() {
	h := w.hub
	_ = h.n.do(context.Background(), func() {
		delete(h.watches, w)
		w.end(nil)
	})
}
