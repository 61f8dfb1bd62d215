package system

import (
	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/tenfoldpb"
)

// SeqRequest queues a range's request for revisions at the leader.
func (s *Range) SeqRequest(from uint64, req *tenfoldpb.SeqRequest) {
	s.queue = append(s.queue, seqWaiter{from: from, req: req})
	s.Pump()
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
	for _, w := range granting {
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
		n.Send(w.from, &tenfoldpb.Message{Body: &tenfoldpb.Message_SeqResponse{SeqResponse: &tenfoldpb.SeqResponse{
			Id: w.req.GetId(), RangeId: w.req.GetRangeId(), First: first, Count: w.req.GetCount(), Current: s.counter, Incarnation: w.req.GetIncarnation()}}})
	}
}
