package sim

import (
	"strings"
	"time"

	"github.com/tenfold/tenfold/check"
	"github.com/tenfold/tenfold/core"
	"github.com/tenfold/tenfold/mvcc"
	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// Watch limits.
const (
	// watchCatchupPage bounds the events read from history per step, as the
	// runtime's watch hub does.
	watchCatchupPage = 1000
	// progressEvery is how often a watcher asks for a progress
	// notification, as a client's WatchProgressRequest would.
	progressEvery = time.Second
)

// watcher is one simulated watch on the keys of one range (a prefix), served
// the way runtime/watch.go serves it: registered at a node with a replica of
// the range, caught up from the engine's history, then fed the events of
// that node's Ready outputs. When its node crashes the stream breaks and the
// watcher resumes from its next revision on some replica, as a real client
// would.
type watcher struct {
	idx       int
	group     int
	prefix    string
	fromStart bool // start at revision 1 (history catch-up) rather than now

	log     check.WatchLog
	started bool
	active  bool
	node    uint64
	inc     int
	rangeID uint64
	next    int64 // next revision to deliver

	lastProgress int64
	// wantProgress is the revision of an answered progress request: a
	// notification is owed once the replica has resolved that far.
	wantProgress   int64
	progressAsked  bool  // a progress request is in flight
	lastProgressAt int64 // when the last progress request was made
}

func (s *Sim) newWatcher(i int) *watcher {
	groups := min(s.cfg.Ranges, s.cfg.Keys)
	g := i % groups
	return &watcher{idx: i, group: g, prefix: groupPrefix(g), fromStart: s.rng.IntN(2) == 0,
		log: check.WatchLog{Key: groupPrefix(g), Prefix: true}}
}

// startWatches (re)creates every watch that is not running, and has the
// running ones ask for progress now and then.
func (s *Sim) startWatches() {
	for _, w := range s.watchers {
		if !w.active {
			s.startWatch(w)
		}
		if w.active && !w.progressAsked && s.now-w.lastProgressAt >= int64(progressEvery) {
			s.requestProgress(w)
		}
	}
}

// requestProgress does what the runtime's RequestProgress does: a CLOSE
// request for the watched range (an empty write cycle that advances the
// range's closed revision and wakes it if quiesced) through the watch's
// node; its answer's revision is owed as a progress notification.
func (s *Sim) requestProgress(w *watcher) {
	n := s.nodes[w.node]
	if n.down || n.inc != w.inc {
		return
	}
	w.progressAsked, w.lastProgressAt = true, s.now
	s.submitRequest(n, &pendingOp{watch: w, final: -1}, &core.ClientRequest{Kind: tenfoldpb.RequestKind_CLOSE, RangeID: w.rangeID, Msg: &pb.RangeRequest{}})
}

// progressAnswered receives the answer to a progress request.
func (s *Sim) progressAnswered(p *pendingOp, resp proto.Message, err error) {
	w := p.watch
	w.progressAsked = false
	r, ok := resp.(*pb.RangeResponse)
	if err != nil || !ok || r.Header == nil || !w.active || w.inc != p.inc || w.node != p.node {
		return
	}
	w.wantProgress = max(w.wantProgress, r.Header.Revision, 1)
	for _, st := range s.nodes[w.node].core.RangeStatuses() {
		if st.RangeID == w.rangeID {
			s.watchProgress(w, st.Closed)
		}
	}
	s.maybeEnd()
}

func (s *Sim) startWatch(w *watcher) {
	// Find the range's replicas in some running data node's directory.
	var replicas []uint64
	for _, id := range s.data {
		n := s.nodes[id]
		if n.down {
			continue
		}
		for _, d := range n.core.Directory() {
			sp := core.Span{Start: d.GetStartKey(), End: d.GetEndKey()}
			if sp.Contains([]byte(w.prefix)) {
				replicas = d.GetReplicas()
			}
		}
		if replicas != nil {
			break
		}
	}
	var up []uint64
	for _, id := range replicas {
		if n := s.nodes[id]; n != nil && !n.down && !n.paused {
			up = append(up, id)
		}
	}
	if len(up) == 0 {
		return
	}
	n := s.nodes[up[s.rng.IntN(len(up))]]
	end := []byte(w.prefix)
	end[len(end)-1]++
	rangeID, resolved, compacted, err := n.core.WatchTarget([]byte(w.prefix), end)
	if err != nil {
		return // no range or replica known there yet: retry later
	}
	if !w.started {
		w.next = resolved + 1
		if w.fromStart {
			w.next = 1
		}
		w.log.StartRevision = w.next
		w.started = true
	}
	if w.next <= compacted {
		s.violate("harness", "watcher %d: history compacted at %d, above its next revision %d (the simulator does not compact)", w.idx, compacted, w.next)
		return
	}
	w.active, w.node, w.inc, w.rangeID = true, n.id, n.inc, rangeID
	span := mvcc.Span{Start: []byte(w.prefix), End: end}
	for w.next <= resolved {
		evs, next, err := mvcc.Events(n.eng, span, w.next, resolved, watchCatchupPage, false)
		if err != nil {
			s.violate("harness", "watcher %d: read history on node %d: %v", w.idx, n.id, err)
			return
		}
		s.deliverEvents(w, evs)
		if next <= w.next {
			break
		}
		w.next = next
	}
	w.next = max(w.next, resolved+1)
	w.progressAsked, w.wantProgress = false, 0
	s.requestProgress(w)
	s.hashNote("watch %d on node %d range %d from %d", w.idx, n.id, rangeID, w.next)
}

func (s *Sim) deliverEvents(w *watcher, evs []*mvccpb.Event) {
	for _, ev := range evs {
		typ := check.EventPut
		if ev.Type == mvccpb.DELETE {
			typ = check.EventDelete
		}
		w.log.AddEvent(ev.Kv.ModRevision, string(ev.Kv.Key), typ, string(ev.Kv.Value))
	}
}

// watchProgress delivers an owed progress notification once the watch's
// replica has resolved up to it, as the runtime's hub does: at the
// replica's resolved revision, which promises every event at or below it
// has been delivered.
func (s *Sim) watchProgress(w *watcher, resolved int64) {
	if w.wantProgress == 0 || resolved < w.wantProgress || resolved < w.next-1 {
		return
	}
	w.wantProgress = 0
	if resolved > w.lastProgress {
		w.log.AddProgress(resolved)
		w.lastProgress = resolved
	}
}

// watchApplied feeds a node's applied events to the watches it serves.
func (s *Sim) watchApplied(n *node, applied []core.Applied) {
	for _, w := range s.watchers {
		if !w.active || w.node != n.id || w.inc != n.inc {
			continue
		}
		for _, a := range applied {
			if a.RangeID != w.rangeID {
				continue
			}
			var evs []*mvccpb.Event
			for _, ev := range a.Events {
				if ev.Kv.ModRevision >= w.next && strings.HasPrefix(string(ev.Kv.Key), w.prefix) {
					evs = append(evs, ev)
				}
			}
			if len(evs) > 0 {
				s.deliverEvents(w, evs)
				w.next = evs[len(evs)-1].Kv.ModRevision + 1
			}
			s.watchProgress(w, a.Resolved)
		}
	}
	s.maybeEnd()
}

// stopWatches breaks the streams of the watches a crashed node served.
func (s *Sim) stopWatches(n *node) {
	for _, w := range s.watchers {
		if w.active && w.node == n.id {
			w.active, w.progressAsked, w.wantProgress = false, false, 0
		}
	}
}

// finalRevision is the highest revision of an acknowledged write: every
// watcher must get there before the run ends.
func (s *Sim) finalRevision() int64 { return s.inv.maxAckedWrite }

// maybeEnd stops the run once the final reads are done and every watcher
// has caught up with the last acknowledged write.
func (s *Sim) maybeEnd() {
	if s.final == nil || s.final.left > 0 {
		return
	}
	final := s.finalRevision()
	for _, w := range s.watchers {
		if w.started && w.lastProgress < final {
			return
		}
	}
	s.stopped = true
}
