package sim

import (
	"slices"
	"time"

	"github.com/tenfold/tenfold/check"
	"github.com/tenfold/tenfold/core"
	"github.com/tenfold/tenfold/core/watch"
	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// progressEvery is how often a watcher asks for a progress notification,
// as a client's WatchProgressRequest would.
const progressEvery = time.Second

// watcher is one simulated watch client on the keys of one range (a
// prefix). Its watch is served by the watch hub (core/watch) of a node with
// a replica of the range, the hub the runtime runs: the simulator only
// carries the hub's CLOSE requests to the node's core, feeds it the core's
// applied events, and records what it delivers. When the serving node
// crashes the stream breaks, and the watcher resumes from its next
// revision on some replica, as a real client would.
type watcher struct {
	idx       int
	group     int
	prefix    string
	fromStart bool // start at revision 1 (history catch-up) rather than now
	// createAt is when a watcher from now first creates its watch: at some
	// point of the active phase, so that writes were acknowledged before.
	createAt int64

	log     check.WatchLog
	started bool // its first watch was created: log.StartRevision is set
	active  bool // a watch is open, or being created, on node/inc
	created bool // that watch's start is settled
	node    uint64
	inc     int
	id      watch.ID // in the node's hub
	next    int64    // revision to resume from

	// ackedAtCreate is the highest acknowledged write revision when the
	// watch from now was asked for: its start must be above it.
	ackedAtCreate  int64
	lastProgress   int64
	lastProgressAt int64 // when the last progress request was made
}

func (s *Sim) newWatcher(i int) *watcher {
	groups := min(s.cfg.Ranges, s.cfg.Keys)
	g := i % groups
	prefix := groupPrefix(g)
	if groups > 1 && i > 0 && i == s.cfg.Watchers-1 {
		// The last watcher follows every client key, across ranges: it is
		// served by a node with a replica of every range.
		g, prefix = -1, "k"
	}
	w := &watcher{idx: i, group: g, prefix: prefix, fromStart: s.rng.IntN(2) == 0,
		log: check.WatchLog{Key: prefix, Prefix: true}}
	w.createAt = s.activeAt
	if !w.fromStart {
		w.createAt += s.rng.Int64N(int64(s.cfg.Duration)/2 + 1)
	}
	return w
}

// newHub gives a (re)started node its watch hub.
func (s *Sim) newHub(n *node) {
	n.hub = watch.New(watch.Config{Engine: n.eng, Ranges: n.core, CloseTimeout: s.cfg.OpTimeout, Bugs: s.cfg.Bugs})
}

// startWatches (re)creates every watch that is not running, and has the
// running ones ask for progress now and then.
func (s *Sim) startWatches() {
	for _, w := range s.watchers {
		if !w.active && s.now >= w.createAt {
			s.startWatch(w)
		}
		if w.active && w.created && s.now-w.lastProgressAt >= int64(progressEvery) {
			s.requestProgress(w)
		}
	}
}

// requestProgress asks the watch's hub for a progress notification.
func (s *Sim) requestProgress(w *watcher) {
	n := s.nodes[w.node]
	if n.down || n.paused || n.inc != w.inc {
		return
	}
	w.lastProgressAt = s.now
	n.hub.RequestProgress(w.id, s.clock(n))
	s.flushHub(n)
}

func (s *Sim) startWatch(w *watcher) {
	// Find the nodes with a replica of every range the watch covers, in
	// some running data node's directory.
	end := []byte(w.prefix)
	end[len(end)-1]++
	span := core.Span{Start: []byte(w.prefix), End: end}
	var replicas []uint64
	for _, id := range s.data {
		n := s.nodes[id]
		if n.down {
			continue
		}
		known := false
		for _, d := range n.core.Directory() {
			sp := core.Span{Start: d.GetStartKey(), End: d.GetEndKey()}
			if !sp.Overlaps(span) {
				continue
			}
			if !known {
				replicas, known = slices.Clone(d.GetReplicas()), true
				continue
			}
			replicas = slices.DeleteFunc(replicas, func(r uint64) bool { return !slices.Contains(d.GetReplicas(), r) })
		}
		if known {
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
	start := w.next
	if !w.started {
		start = 0 // from now
		if w.fromStart {
			start = 1
		}
	}
	w.active, w.created, w.node, w.inc = true, false, n.id, n.inc
	w.ackedAtCreate = s.inv.maxAckedWrite
	w.id = n.hub.Create(watch.Request{Key: []byte(w.prefix), End: end, Start: start}, s.clock(n))
	s.hashNote("watch %d on node %d from %d", w.idx, n.id, start)
	s.flushHub(n)
}

// flushHub carries out what node n's hub decided: its CLOSE requests go to
// the node's core (as client requests of the node itself), its creations
// and batches to the watchers' logs.
func (s *Sim) flushHub(n *node) {
	out := n.hub.Ready()
	for _, c := range out.Closes {
		n.nextReq++
		key := reqKey{node: n.id, inc: n.inc, id: n.nextReq}
		s.pending[key] = &pendingOp{hubRef: c.Ref, final: -1, node: n.id, inc: n.inc}
		req := &core.ClientRequest{ID: key.id, Kind: tenfoldpb.RequestKind_CLOSE, RangeID: c.RangeID, Msg: &pb.RangeRequest{}, Deadline: c.Deadline}
		// No give-up: the core answers every request by its deadline (a
		// paused node when it resumes), and a crash takes the hub along.
		s.schedule(s.now, &event{kind: evSubmit, node: n.id, inc: n.inc, req: req, reqID: key.id})
	}
	for _, c := range out.Created {
		if w := s.watcherOf(n, c.Watch); w != nil {
			s.watchCreated(w, c)
		}
	}
	for _, b := range out.Batches {
		if w := s.watcherOf(n, b.Watch); w != nil {
			s.watchBatch(w, b)
		}
	}
	s.maybeEnd()
}

// watcherOf is the watcher whose open watch on n is id.
func (s *Sim) watcherOf(n *node, id watch.ID) *watcher {
	for _, w := range s.watchers {
		if w.active && w.node == n.id && w.inc == n.inc && w.id == id {
			return w
		}
	}
	return nil
}

func (s *Sim) watchCreated(w *watcher, c watch.Created) {
	if c.Err != nil {
		w.active = false // no leader, no range known yet...: retry later
		return
	}
	if !w.started {
		w.started, w.log.StartRevision = true, c.Start
		if !w.fromStart && c.Start-1 < w.ackedAtCreate {
			s.violate("S6-watch", "watcher %d: a watch from now started at revision %d, so it would deliver the write at %d acknowledged before it was created",
				w.idx, c.Start, w.ackedAtCreate)
		}
	}
	w.created, w.next = true, max(w.next, c.Start)
	s.hashNote("watch %d created on node %d at %d", w.idx, w.node, c.Start)
	s.requestProgress(w)
}

func (s *Sim) watchBatch(w *watcher, b watch.Batch) {
	if b.CompactRevision != 0 {
		s.violate("harness", "watcher %d: history compacted at %d, above its start %d (the simulator does not compact)", w.idx, b.CompactRevision, w.next)
	}
	if b.End {
		if b.Err != nil {
			s.violate("harness", "watcher %d: watch on node %d ended: %v", w.idx, w.node, b.Err)
		}
		w.active = false
		return
	}
	if len(b.Events) == 0 {
		w.log.AddProgress(b.Revision)
		w.lastProgress = max(w.lastProgress, b.Revision)
		w.next = max(w.next, b.Revision+1)
		return
	}
	for _, ev := range b.Events {
		typ := check.EventPut
		if ev.Type == mvccpb.DELETE {
			typ = check.EventDelete
		}
		w.log.AddEvent(ev.Kv.ModRevision, string(ev.Kv.Key), typ, string(ev.Kv.Value))
	}
	w.next = max(w.next, b.Events[len(b.Events)-1].Kv.ModRevision+1)
}

// closeAnswered hands a node's answer to its hub's CLOSE request back.
func (s *Sim) closeAnswered(n *node, p *pendingOp, resp proto.Message, err error) {
	if n.down || n.inc != p.inc {
		return
	}
	var rev int64
	if r, ok := resp.(*pb.RangeResponse); ok && err == nil {
		rev = r.GetHeader().GetRevision()
	}
	n.hub.Closed(p.hubRef, rev, err, s.clock(n))
	s.flushHub(n)
}

// watchApplied feeds a node's applied events to its hub.
func (s *Sim) watchApplied(n *node, applied []core.Applied) {
	n.hub.Applied(applied)
	s.flushHub(n)
}

// stopWatches breaks the streams of the watches a crashed node served.
func (s *Sim) stopWatches(n *node) {
	n.hub = nil
	for _, w := range s.watchers {
		if w.active && w.node == n.id {
			w.active = false
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
