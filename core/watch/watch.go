// Package watch is a node's watch hub as a state machine with no I/O: no
// goroutines, channels, clocks or network. It is fed watch create, cancel
// and progress requests, the node core's Output.Applied, the answers to the
// CLOSE requests it asks its driver to submit, and the current time; it
// hands back, from Ready, the CLOSE requests to submit, the watches whose
// start is settled, and the batches to deliver. The runtime (goroutines and
// channels at the edge) and the simulator drive the same hub, so the
// simulator's watch checks (S6) judge the code users run. docs/watch.md has
// the design.
package watch

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/tenfold/tenfold/core"
	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/mvcc"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Limits and defaults.
const (
	// DefaultCatchupPage bounds the events read from history per batch.
	DefaultCatchupPage = 1000
	// DefaultCloseTimeout is the deadline of a CLOSE request behind a
	// watch's start or a progress notification.
	DefaultCloseTimeout = 5 * time.Second
	// maxStartCloses bounds the CLOSE requests behind one watch's start: a
	// CLOSE that failed with Unavailable (the range's leader changed under
	// it, no leader yet) did nothing and is retried, as etcd's watches do
	// not fail on a leader change; all of them share the first one's
	// deadline, so a creation takes at most CloseTimeout.
	maxStartCloses = 3
)

// ID names a watch of one hub.
type ID uint64

// Ranges is what the hub reads from the node core (core.Node implements it).
type Ranges interface {
	// WatchTargets finds the local replicas that serve a watch on the etcd
	// interval [key, end), one per range it touches, in key order.
	WatchTargets(key, end []byte) ([]core.WatchTarget, error)
}

// Config configures a hub.
type Config struct {
	// Engine is the node's engine, read for catch-up from history.
	Engine engine.Reader
	// Ranges is the node core.
	Ranges Ranges
	// CatchupPage bounds events per catch-up batch (DefaultCatchupPage).
	CatchupPage int
	// CloseTimeout is the deadline of CLOSE requests (DefaultCloseTimeout).
	CloseTimeout time.Duration
	// Bugs switches on deliberate defects (tests of the checkers only).
	Bugs core.Bugs
}

// Request asks for a watch, with etcd's key and range_end conventions.
type Request struct {
	Key, End []byte
	// Start is the first revision to deliver; 0 means "from now": right
	// after a revision at or above every write acknowledged before the
	// watch was created.
	Start  int64
	PrevKV bool
}

// Close asks the driver to submit a CLOSE request for RangeID to the core
// (core.ClientRequest with Kind CLOSE, RangeID, an empty RangeRequest and
// Deadline) and to hand its answer to Hub.Closed with Ref. The answer's
// header revision is the sequencer's current revision, which is at or above
// every write acknowledged before the request (S7), and the range has
// resolved it once the answer comes.
type Close struct {
	Ref      uint64
	RangeID  uint64
	Deadline time.Time
}

// Created settles a watch's creation: it started at Start (every event
// from Start on will be delivered), or failed with Err and is gone.
type Created struct {
	Watch ID
	Start int64
	Err   error
}

// Batch is one delivery to a watch: events in revision order, all at or
// below Revision; without events it is a progress notification (every event
// at or below Revision was delivered). CompactRevision is set when the
// watch's start was compacted. End means the watch is over after this batch
// (Err says why, nil for compaction); the hub has forgotten it.
type Batch struct {
	Watch           ID
	Events          []*mvccpb.Event
	Revision        int64
	CompactRevision int64
	End             bool
	Err             error
}

// Output is what one Ready call hands back. Drivers handle Created before
// Batches: a watch's Created never comes after its first batch.
type Output struct {
	Closes  []Close
	Created []Created
	Batches []Batch
}

// Empty reports whether o carries nothing.
func (o *Output) Empty() bool {
	return len(o.Closes) == 0 && len(o.Created) == 0 && len(o.Batches) == 0
}

// Hub is the watch state of one node.
type Hub struct {
	cfg     Config
	now     time.Time
	watches map[ID]*watcher
	// byRange lists, per range, its watches in creation order (a
	// deterministic output, and delivery costs the range's watches only).
	byRange map[uint64][]ID
	nextID  ID
	refs    map[uint64]closeRef
	nextRef uint64
	// resolved is, per local range, the highest resolved revision seen.
	resolved map[uint64]int64
	// lagging are the ranges with a CLOSE on demand outstanding.
	lagging map[uint64]bool
	out     Output
}

// closeRef is what an outstanding CLOSE request is for.
type closeRef struct {
	watch ID
	start bool // the watch's start; otherwise a progress request
	// lag, if set, names a range closed on demand because watches across
	// ranges wait for it to resolve (its watch is then 0).
	lag uint64
}

type watcher struct {
	id       ID
	key, end []byte
	span     core.Span
	prevKV   bool
	// ranges are the ranges the watch covers, in key order; a watch of one
	// range gets that range's events as they apply, a watch across ranges
	// gets them merged in revision order (deliverMerged).
	ranges  []uint64
	closes  int       // CLOSE requests sent for its start
	startBy time.Time // their common deadline
	started bool
	next    int64 // next revision to deliver, once started
	// wantProgress: a progress notification is owed once the range has
	// resolved this revision (0: none owed).
	wantProgress int64
	progressRef  uint64 // outstanding progress CLOSE, 0 if none
	// progressAgain: a progress request came while one was outstanding;
	// it needs a CLOSE of its own, issued when the first is answered.
	progressAgain bool
	// Across ranges: held are events above the frontier (the lowest
	// revision every covered range resolved), in revision order, waiting
	// for it; nextOf is, per range, the next revision to take from it.
	held   []*mvccpb.Event
	nextOf map[uint64]int64
}

// multi reports whether w covers more than one range.
func (w *watcher) multi() bool { return len(w.ranges) > 1 }

// New returns an empty hub.
func New(cfg Config) *Hub {
	if cfg.Engine == nil || cfg.Ranges == nil {
		panic("watch: Config needs an Engine and Ranges")
	}
	if cfg.CatchupPage <= 0 {
		cfg.CatchupPage = DefaultCatchupPage
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = DefaultCloseTimeout
	}
	return &Hub{cfg: cfg, watches: map[ID]*watcher{}, byRange: map[uint64][]ID{}, refs: map[uint64]closeRef{}, resolved: map[uint64]int64{}, lagging: map[uint64]bool{}}
}

// Ready returns what the hub produced since the last call.
func (h *Hub) Ready() Output {
	out := h.out
	h.out = Output{}
	return out
}

// Len is the number of watches (started or not).
func (h *Hub) Len() int { return len(h.watches) }

// Create starts a watch. Its Created comes out of this or a later Ready: at
// once for a watch with a start revision, after the answer to a CLOSE of
// the watched range for a watch from now.
func (h *Hub) Create(r Request, now time.Time) ID {
	h.now = now
	h.nextID++
	w := &watcher{id: h.nextID, key: r.Key, end: r.End, span: core.EtcdSpan(r.Key, r.End), prevKV: r.PrevKV}
	targets, err := h.cfg.Ranges.WatchTargets(r.Key, r.End)
	if err != nil {
		h.out.Created = append(h.out.Created, Created{Watch: w.id, Err: err})
		return w.id
	}
	h.watches[w.id] = w
	h.setRanges(w, targets)
	switch {
	case r.Start > 0:
		h.start(w, r.Start)
	case h.cfg.Bugs.StaleWatchStart:
		// The defect this hub once had: "now" is the local replica's view.
		h.start(w, h.frontier(w)+1)
	default:
		h.close(w, true)
	}
	return w.id
}

// Cancel forgets a watch; nothing more is delivered for it.
func (h *Hub) Cancel(id ID) {
	w, ok := h.watches[id]
	if !ok {
		return
	}
	delete(h.watches, id)
	h.setRanges(w, nil)
}

// setRanges notes the targets' resolved revisions and files w under their
// ranges (none: under none).
func (h *Hub) setRanges(w *watcher, targets []core.WatchTarget) {
	ids := make([]uint64, len(targets))
	for i, t := range targets {
		h.noteResolved(t.RangeID, t.Resolved)
		ids[i] = t.RangeID
	}
	if slices.Equal(w.ranges, ids) {
		return
	}
	for _, r := range w.ranges {
		left := slices.DeleteFunc(h.byRange[r], func(x ID) bool { return x == w.id })
		if len(left) == 0 {
			delete(h.byRange, r)
		} else {
			h.byRange[r] = left
		}
	}
	w.ranges = ids
	for _, r := range ids {
		h.byRange[r] = append(h.byRange[r], w.id)
	}
}

// frontier is the highest revision every range w covers has resolved.
func (h *Hub) frontier(w *watcher) int64 {
	f := int64(-1)
	for _, r := range w.ranges {
		if f < 0 || h.resolved[r] < f {
			f = h.resolved[r]
		}
	}
	return max(f, 0)
}

// RequestProgress asks for a progress notification at or above the store
// revision now: a CLOSE of the watched range gives that revision, and the
// notification goes out once the local replica has resolved it.
func (h *Hub) RequestProgress(id ID, now time.Time) {
	h.now = now
	w, ok := h.watches[id]
	if !ok || !w.started {
		return
	}
	if w.progressRef != 0 {
		w.progressAgain = true
		return
	}
	h.close(w, false)
}

// Closed hands the hub the answer to one of its Close requests: the
// answer's header revision, or the error it ended with.
func (h *Hub) Closed(ref uint64, rev int64, err error, now time.Time) {
	h.now = now
	cr, ok := h.refs[ref]
	if !ok {
		return
	}
	delete(h.refs, ref)
	if cr.lag != 0 {
		// Done, the local replica resolves the revision when it applies
		// the CLOSE, and its Applied delivers what waited. Failed, the
		// watches still waiting for the range ask again now.
		delete(h.lagging, cr.lag)
		if err == nil {
			return
		}
		for _, id := range h.byRange[cr.lag] {
			if w := h.watches[id]; w.started && w.multi() {
				h.flush(w)
				h.maybeProgress(w)
			}
		}
		return
	}
	w, ok := h.watches[cr.watch]
	if !ok {
		return
	}
	if cr.start {
		if err != nil && status.Code(err) == codes.Unavailable && w.closes < maxStartCloses && h.now.Before(w.startBy) {
			h.close(w, true)
			return
		}
		if err != nil {
			h.Cancel(w.id)
			h.out.Created = append(h.out.Created, Created{Watch: w.id, Err: err})
			return
		}
		h.start(w, max(rev, 0)+1)
		return
	}
	w.progressRef = 0
	if err != nil {
		// Without an answer the notification is at what the local replica
		// has resolved: honest, only not necessarily current.
		rev = 0
	}
	w.wantProgress = max(w.wantProgress, rev, 1)
	h.maybeProgress(w)
	if w.progressAgain {
		w.progressAgain = false
		h.close(w, false)
	}
}

// Applied delivers the events a Ready round of the core applied, and the
// progress notifications the ranges' new resolved revisions allow.
func (h *Hub) Applied(as []core.Applied) {
	for _, a := range as {
		h.noteResolved(a.RangeID, a.Resolved)
		for _, id := range h.byRange[a.RangeID] {
			w := h.watches[id]
			if !w.started {
				continue
			}
			if w.multi() {
				h.deliverMerged(w, a)
			} else {
				h.deliver(w, a.Events, a.Resolved)
			}
			h.maybeProgress(w)
		}
	}
}

// deliver sends w the events it has not had yet, in span.
func (h *Hub) deliver(w *watcher, events []*mvccpb.Event, resolved int64) {
	var evs []*mvccpb.Event
	for _, ev := range events {
		if ev.Kv.ModRevision < w.next || !w.span.Contains(ev.Kv.Key) {
			continue
		}
		if !w.prevKV && ev.PrevKv != nil {
			ev = &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		return
	}
	last := evs[len(evs)-1].Kv.ModRevision
	if last < w.next || last > resolved {
		panic(fmt.Sprintf("watch: event at revision %d for watch %d outside [%d, resolved %d]", last, w.id, w.next, resolved))
	}
	h.out.Batches = append(h.out.Batches, Batch{Watch: w.id, Events: evs, Revision: resolved})
	w.next = last + 1
}

// start settles w's start revision, catches it up from history up to the
// range's resolved revision, and from then on feeds it live events.
func (h *Hub) start(w *watcher, start int64) {
	targets, err := h.cfg.Ranges.WatchTargets(w.key, w.end)
	if err != nil {
		h.Cancel(w.id)
		h.out.Created = append(h.out.Created, Created{Watch: w.id, Err: err})
		return
	}
	h.setRanges(w, targets)
	var compacted int64
	for _, t := range targets {
		compacted = max(compacted, t.Compacted)
	}
	resolved, rangeID := h.frontier(w), w.ranges[0]
	w.started, w.next = true, start
	h.out.Created = append(h.out.Created, Created{Watch: w.id, Start: start})
	// etcd refuses a watch only below the compacted revision: the events at
	// it are kept (mvcc.Compact).
	if start < compacted {
		h.end(w, Batch{CompactRevision: compacted, Revision: resolved}, nil)
		return
	}
	span := mvcc.Span{Start: w.span.Start, End: w.span.End}
	for w.next <= resolved {
		evs, next, err := mvcc.Events(h.cfg.Engine, span, w.next, resolved, h.cfg.CatchupPage, w.prevKV)
		if err != nil {
			h.end(w, Batch{}, status.Errorf(codes.Internal, "tenfold: read watch history of range %d from revision %d: %v", rangeID, w.next, err))
			return
		}
		if len(evs) > 0 {
			h.out.Batches = append(h.out.Batches, Batch{Watch: w.id, Events: evs, Revision: resolved})
		}
		if next <= w.next {
			panic(fmt.Sprintf("watch: history read from %d did not advance (next %d)", w.next, next))
		}
		w.next = next
	}
	if w.multi() && !h.holdAbove(w, targets, resolved) {
		return
	}
	h.maybeProgress(w)
}

// holdAbove starts a watch across ranges from the frontier f it was caught
// up to: the events a covered range applied above f are read from history
// and held until every range resolved them; later ones come live. It
// reports false if the watch ended (a history read failed).
func (h *Hub) holdAbove(w *watcher, targets []core.WatchTarget, f int64) bool {
	w.nextOf = map[uint64]int64{}
	for _, t := range targets {
		from := max(w.next, f+1)
		w.nextOf[t.RangeID] = max(from, t.Resolved+1)
		if t.Resolved < from {
			continue
		}
		part := mvcc.Span{Start: t.Start, End: t.End}
		if bytes.Compare(w.span.Start, part.Start) > 0 {
			part.Start = w.span.Start
		}
		if len(w.span.End) > 0 && (len(part.End) == 0 || bytes.Compare(w.span.End, part.End) < 0) {
			part.End = w.span.End
		}
		evs, _, err := mvcc.Events(h.cfg.Engine, part, from, t.Resolved, 0, w.prevKV)
		if err != nil {
			h.end(w, Batch{}, status.Errorf(codes.Internal, "tenfold: read watch history of range %d from revision %d: %v", t.RangeID, from, err))
			return false
		}
		w.held = append(w.held, evs...)
	}
	sortByRevision(w.held)
	h.flush(w)
	return true
}

// deliverMerged takes a covered range's applied events for a watch across
// ranges and delivers whatever the frontier now allows.
func (h *Hub) deliverMerged(w *watcher, a core.Applied) {
	next := w.nextOf[a.RangeID]
	added := false
	for _, ev := range a.Events {
		if ev.Kv.ModRevision < next || !w.span.Contains(ev.Kv.Key) {
			continue
		}
		if !w.prevKV && ev.PrevKv != nil {
			ev = &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
		}
		w.held = append(w.held, ev)
		w.nextOf[a.RangeID] = ev.Kv.ModRevision + 1
		added = true
	}
	if added {
		sortByRevision(w.held)
	}
	h.flush(w)
}

// flush delivers a watch across ranges its held events at or below the
// frontier, in one batch (a revision is written by one range, so its
// events are all there), and closes on demand the ranges that hold the
// rest back.
func (h *Hub) flush(w *watcher) {
	f := h.frontier(w)
	if h.cfg.Bugs.WatchWithoutFrontier {
		for _, r := range w.ranges {
			f = max(f, h.resolved[r]) // deliberate defect: the fastest range's view
		}
	}
	n := 0
	for n < len(w.held) && w.held[n].Kv.ModRevision <= f {
		n++
	}
	if n > 0 {
		evs := slices.Clone(w.held[:n])
		w.held = slices.Delete(w.held, 0, n)
		if evs[0].Kv.ModRevision < w.next {
			panic(fmt.Sprintf("watch: event at revision %d for watch %d below its next revision %d", evs[0].Kv.ModRevision, w.id, w.next))
		}
		h.out.Batches = append(h.out.Batches, Batch{Watch: w.id, Events: evs, Revision: f})
		w.next = evs[n-1].Kv.ModRevision + 1
	}
	if len(w.held) > 0 {
		h.closeLagging(w, w.held[0].Kv.ModRevision)
	}
}

// closeLagging asks for a CLOSE of every range of w that has not resolved
// rev and has none outstanding: an idle range resolves only when it runs a
// cycle, and a watch across ranges waits for its slowest range.
func (h *Hub) closeLagging(w *watcher, rev int64) {
	for _, r := range w.ranges {
		if h.resolved[r] >= rev || h.lagging[r] {
			continue
		}
		h.lagging[r] = true
		h.nextRef++
		h.refs[h.nextRef] = closeRef{lag: r}
		h.out.Closes = append(h.out.Closes, Close{Ref: h.nextRef, RangeID: r, Deadline: h.now.Add(h.cfg.CloseTimeout)})
	}
}

// sortByRevision orders events by revision, keeping the order within one.
func sortByRevision(evs []*mvccpb.Event) {
	slices.SortStableFunc(evs, func(a, b *mvccpb.Event) int { return cmp.Compare(a.Kv.ModRevision, b.Kv.ModRevision) })
}

// end delivers w's last batch and forgets it.
func (h *Hub) end(w *watcher, b Batch, err error) {
	h.Cancel(w.id)
	b.Watch, b.End, b.Err = w.id, true, err
	h.out.Batches = append(h.out.Batches, b)
}

// close asks for a CLOSE of w's range, for its start or for progress.
func (h *Hub) close(w *watcher, start bool) {
	h.nextRef++
	ref := h.nextRef
	h.refs[ref] = closeRef{watch: w.id, start: start}
	deadline := h.now.Add(h.cfg.CloseTimeout)
	if start {
		if w.closes == 0 {
			w.startBy = deadline
		}
		w.closes++
		deadline = w.startBy
	} else {
		w.progressRef = ref
	}
	h.out.Closes = append(h.out.Closes, Close{Ref: ref, RangeID: w.ranges[0], Deadline: deadline})
}

// maybeProgress sends an owed progress notification once the range has
// resolved the owed revision and everything up to w's next revision was
// delivered: at the range's resolved revision, which promises every event
// at or below it.
func (h *Hub) maybeProgress(w *watcher) {
	resolved := h.frontier(w)
	if w.wantProgress > resolved && w.multi() {
		h.closeLagging(w, w.wantProgress)
	}
	if w.wantProgress == 0 || resolved < w.wantProgress || resolved < w.next-1 || len(w.held) > 0 && w.held[0].Kv.ModRevision <= resolved {
		return
	}
	w.wantProgress = 0
	h.out.Batches = append(h.out.Batches, Batch{Watch: w.id, Revision: resolved})
}

func (h *Hub) noteResolved(rangeID uint64, resolved int64) {
	h.resolved[rangeID] = max(h.resolved[rangeID], resolved)
}
