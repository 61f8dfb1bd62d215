package sim

import (
	"fmt"
	"time"

	"github.com/tenfold/tenfold/core"
	"github.com/tenfold/tenfold/tenfoldpb"
	"google.golang.org/protobuf/proto"
)

// network is the simulated network between nodes. Like the runtime's
// transport it has two streams per directed link (urgent and bulk), each in
// order: a message never overtakes an earlier one of its stream, while the
// streams and the links race each other (latency jitter reorders them).
// Faults add loss, duplication with reordering inside a stream, and cut
// links.
type network struct {
	s *Sim
	// streams holds, per (from, to, urgent), the arrival time of the last
	// message, to keep the stream in order, and when the link is free again
	// under a bandwidth limit.
	streams map[streamKey]*stream
	cuts    []*cut
	// lossP and dupP are the current loss and duplication probabilities.
	lossP, dupP float64
}

type streamKey struct {
	from, to uint64
	urgent   bool
}

type stream struct {
	lastArrival int64
	freeAt      int64
}

// cut is one partition: messages from a node in from to a node in to are
// dropped while it is active.
type cut struct {
	id     int
	desc   string
	from   map[uint64]bool
	to     map[uint64]bool
	active bool
	twin   *cut // the way back of a symmetric partition
}

func newNetwork(s *Sim) *network {
	return &network{s: s, streams: map[streamKey]*stream{}}
}

// blocked reports whether a link is cut by an active partition.
func (nw *network) blocked(from, to uint64) bool {
	for _, c := range nw.cuts {
		if c.active && c.from[from] && c.to[to] {
			return true
		}
	}
	return false
}

// baseLatency is a link's fixed latency, derived from the seed and the
// link, in [LinkLatency/2, 3*LinkLatency/2).
func (nw *network) baseLatency(from, to uint64) time.Duration {
	x := splitmix(nw.s.cfg.Seed ^ from<<32 ^ to)
	l := nw.s.cfg.LinkLatency
	return l/2 + time.Duration(x%uint64(l))
}

// send puts a message from a node's output on the network.
func (nw *network) send(m *tenfoldpb.Message) {
	s := nw.s
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("sim: cannot encode a core message: %v", err))
	}
	from, to := m.GetFrom(), m.GetTo()
	s.inv.observeLeaderMessages(m)
	s.stats.record(m, from, to, len(b), s.isControl(from) || s.isControl(to))
	if s.now >= s.activeAt && s.now < s.healAt {
		s.active.record(m, from, to, len(b), s.isControl(from) || s.isControl(to))
		s.inv.observeIdleTraffic(m)
	}
	if kr := m.GetKeepaliveResponse(); kr != nil && len(kr.GetRanges()) > 0 {
		s.inv.checkServedDirectory(from, kr.GetRanges())
	}
	dst, ok := s.nodes[to]
	if !ok || from == to {
		s.stats.misaddressed++
		return
	}
	if nw.blocked(from, to) {
		s.stats.blocked++
		return
	}
	if nw.lossP > 0 && s.rng.Float64() < nw.lossP {
		s.stats.lost++
		return
	}
	key := streamKey{from, to, core.Urgent(m)}
	st := nw.streams[key]
	if st == nil {
		st = &stream{}
		nw.streams[key] = st
	}
	depart := s.now
	if bw := s.cfg.BandwidthBytesPerSec; bw > 0 {
		depart = max(depart, st.freeAt) + int64(len(b))*int64(time.Second)/bw
		st.freeAt = depart
	}
	lat := nw.baseLatency(from, to) + time.Duration(s.rng.ExpFloat64()*float64(s.cfg.LinkJitter))
	at := max(depart+int64(lat), st.lastArrival)
	st.lastArrival = at
	s.schedule(at, &event{kind: evDeliver, node: to, inc: dst.inc, from: from, data: b})
	if nw.dupP > 0 && s.rng.Float64() < nw.dupP {
		// A duplicate takes its own path and may overtake later messages.
		s.stats.duplicated++
		again := depart + int64(nw.baseLatency(from, to)) + int64(s.rng.ExpFloat64()*float64(10*time.Millisecond))
		s.schedule(again, &event{kind: evDeliver, node: to, inc: dst.inc, from: from, data: b})
	}
}

func (s *Sim) isControl(id uint64) bool { return id >= 1 && id <= uint64(s.cfg.ControlNodes) }

// splitmix is SplitMix64's finaliser: a stateless hash of x.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
