package system

import (
	"encoding/binary"

	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/core/keys"
	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/tenfoldpb"
)

// SeqRequest queues a range's request for revisions at the leader.
func (s *Range) SeqRequest(from uint64, req *tenfoldpb.SeqRequest) {
	if s.repeated(from, req) {
		return
	}
	s.queue = append(s.queue, seqWaiter{from: from, req: req})
	s.Pump()
}

// seqAsker names a range leader's sequencer requests: a node asks for one
// range at a time (its cycle), so the last grant per asker is all a retry
// can repeat.
type seqAsker struct{ node, rangeID uint64 }

// repeated handles a request this leader has seen before (a retry, or a
// duplicated message): it answers again with the grant already given, or
// drops the request while the first copy waits. Granting it twice would
// burn the revisions of one grant, a gap in a fault-free run.
func (s *Range) repeated(from uint64, req *tenfoldpb.SeqRequest) bool {
	same := func(id, inc uint64) bool { return id == req.GetId() && inc == req.GetIncarnation() }
	if g, ok := s.lastGrant[seqAsker{from, req.GetRangeId()}]; ok {
		if same(g.GetId(), g.GetIncarnation()) {
			s.h.Send(from, &tenfoldpb.Message{Body: &tenfoldpb.Message_SeqResponse{SeqResponse: g}})
			return true
		}
		// A range numbers its requests in increasing order, and asks again
		// only for its current cycle: a request older than one already
		// granted is a late copy (a duplicated or delayed message) of a
		// request whose cycle is over.
		if req.GetIncarnation() < g.GetIncarnation() || (req.GetIncarnation() == g.GetIncarnation() && req.GetId() < g.GetId()) {
			return true
		}
	}
	for _, ws := range [][]seqWaiter{s.queue, s.granting, s.fast} {
		for _, w := range ws {
			if w.from == from && w.req.GetRangeId() == req.GetRangeId() && same(w.req.GetId(), w.req.GetIncarnation()) {
				return true
			}
		}
	}
	return false
}

// pumpSequencer grants what it can: pure write batches at once, the
// others (linearizable: their "current" must not be behind a newer
// leader's grants) after a ReadIndex round.
func (s *Range) pumpSequencer() {
	// Pure write batches are granted at once: uniqueness comes from the
	// window, and their "current" only bounds the asking range's own future
	// writes, which any later leader's grants exceed anyway.
	kept := s.queue[:0:0]
	for _, w := range s.queue {
		if w.req.GetLinearizable() {
			kept = append(kept, w)
		} else {
			s.fast = append(s.fast, w)
		}
	}
	s.queue = kept
	if len(s.fast) > 0 && s.fits(s.fast) {
		s.grant(&s.fast)
	}
	if s.readCtx == nil && len(s.queue) > 0 {
		s.granting, s.queue = s.queue, nil
		s.nextCtx++
		s.readCtx = binary.BigEndian.AppendUint64([]byte("seq"), s.nextCtx)
		s.readDone = false
		s.r.ReadIndex(s.readCtx)
		return
	}
	if s.readCtx == nil || !s.readDone || s.r.Applied().Index < s.readIndex || !s.fits(s.granting) {
		return
	}
	// Clear the round before answering: an answer may re-enter Pump.
	s.readCtx = nil
	s.grant(&s.granting)
	if len(s.queue) > 0 || len(s.fast) > 0 {
		s.Pump()
	}
}

// fits reports whether the persisted window covers the requests in ws; if
// not, it proposes an extension (pump runs again when it applies).
func (s *Range) fits(ws []seqWaiter) bool {
	var need uint64
	for _, w := range ws {
		need += w.req.GetCount()
	}
	if s.counter+int64(need) <= s.windowEnd {
		return true
	}
	if !s.extending {
		s.extending, s.extendSent = true, s.h.Now()
		spare := s.h.Config().SequencerWindow
		if s.h.Config().Buggify.Fire(host.BuggifySmallWindow, 0.5) {
			spare = 0 // the next grant needs an extension again
		}
		s.proposeCmd(&tenfoldpb.SystemCommand{WindowEnd: s.counter + int64(need) + spare})
	}
	return false
}

// grant answers every request in *ws; the caller checked fits.
func (s *Range) grant(ws *[]seqWaiter) {
	n := s.h
	// Detach the batch before answering: an answer to a range on this node
	// is delivered at once and may re-enter pump with that range's next
	// request, which must start a new batch, not join (or be wiped with)
	// this one.
	granting := *ws
	*ws = nil
	// Assertions, paired with the asking range's on receipt: a grant starts
	// above every revision handed out before, and never passes the window
	// a new leader would start from (the deliberate sequencer bugs break
	// both on purpose, for the checkers to find).
	check := !n.Config().Bugs.ReuseRevision && !n.Config().Bugs.SkipRevision
	for _, w := range granting {
		prev := s.counter
		first := s.counter + 1
		if n.Config().Bugs.ReuseRevision && w.req.GetCount() > 0 && s.counter > 1 {
			first = s.counter // deliberate defect: hand the last revision out again
		}
		if n.Config().Bugs.SkipRevision && w.req.GetCount() > 0 && first%50 == 0 {
			first++ // deliberate defect: a revision no write gets
		}
		s.counter = first + int64(w.req.GetCount()) - 1
		if w.req.GetCount() == 0 {
			s.counter = first - 1
		}
		if check && !(host.Assert(n, w.req.GetCount() == 0 || first > prev, "S6-grant", "sequencer grants from %d after handing out %d", first, prev) &&
			host.Assert(n, s.counter <= s.windowEnd, "S6-window", "sequencer grants up to %d past its persisted window end %d", s.counter, s.windowEnd)) {
			return
		}
		g := &tenfoldpb.SeqResponse{Id: w.req.GetId(), RangeId: w.req.GetRangeId(), First: first, Count: w.req.GetCount(), Current: s.counter, Incarnation: w.req.GetIncarnation()}
		s.lastGrant[seqAsker{w.from, w.req.GetRangeId()}] = g
		n.Send(w.from, &tenfoldpb.Message{Body: &tenfoldpb.Message_SeqResponse{SeqResponse: g}})
	}
}

// applyWindow applies a window extension: revisions up to end may be
// handed out (by this leader, and from end on by the next).
func (s *Range) applyWindow(b engine.Batch, end int64, mine bool) ([]func(), error) {
	if end <= s.windowEnd {
		return nil, nil
	}
	s.windowEnd = end
	if err := b.Set(keys.SysWindow, binary.BigEndian.AppendUint64(nil, uint64(s.windowEnd))); err != nil {
		return nil, err
	}
	if mine {
		return []func(){func() { s.extending = false; s.Pump() }}, nil
	}
	return nil, nil
}
