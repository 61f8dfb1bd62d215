package sim

import (
	"fmt"
	"math"
	"time"
)

// actionKind is one step of a fault: its start or its end.
type actionKind uint8

const (
	actStart     actionKind = iota + 1 // start a fault of family a.family
	actRestart                         // restart a crashed node
	actResume                          // resume a paused node
	actUncut                           // heal a partition
	actFlap                            // toggle a flapping partition
	actClockOK                         // put a node's clock back
	actLossOff                         // end a loss or duplication window
	actDiskOK                          // end a slow-disk window
	actFinalRead                       // retry a final read (not a fault)
)

// action is a scheduled fault step.
type action struct {
	kind   actionKind
	family FaultKind
	node   uint64
	inc    int
	cut    *cut
	until  int64
	window *lossWindow
	key    int
}

// lossWindow is one period of message loss and duplication.
type lossWindow struct {
	loss, dup float64
}

// faultState is what the fault injector keeps between steps.
type faultState struct {
	down    int // nodes crashed or paused now
	nextCut int
	losses  []*lossWindow
}

func newFaultState() *faultState { return &faultState{} }

// Fault durations, drawn uniformly from [min, max).
var (
	partitionDur = [2]time.Duration{500 * time.Millisecond, 4 * time.Second}
	crashDur     = [2]time.Duration{500 * time.Millisecond, 4 * time.Second}
	pauseDur     = [2]time.Duration{200 * time.Millisecond, 3 * time.Second}
	clockDur     = [2]time.Duration{time.Second, 5 * time.Second}
	lossDur      = [2]time.Duration{500 * time.Millisecond, 3 * time.Second}
	diskDur      = [2]time.Duration{500 * time.Millisecond, 3 * time.Second}
	flapPeriod   = [2]time.Duration{100 * time.Millisecond, 500 * time.Millisecond}
)

func (s *Sim) between(r [2]time.Duration) int64 {
	return int64(r[0]) + s.rng.Int64N(int64(r[1]-r[0]))
}

// planFaults schedules the start of every fault: a Poisson process of
// FaultRate per virtual second over the active period, each of an enabled
// family chosen by the seed. What each fault hits is decided when it starts.
func (s *Sim) planFaults() {
	if len(s.cfg.Faults) == 0 || s.cfg.FaultRate <= 0 {
		return
	}
	t := s.activeAt
	for {
		t += int64(s.rng.ExpFloat64() / s.cfg.FaultRate * float64(time.Second))
		if t >= s.healAt {
			return
		}
		fam := s.cfg.Faults[s.rng.IntN(len(s.cfg.Faults))]
		s.schedule(t, &event{kind: evFault, action: &action{kind: actStart, family: fam}})
	}
}

func (s *Sim) logFault(format string, args ...any) {
	line := fmt.Sprintf("%v ", dur(s.now)) + fmt.Sprintf(format, args...)
	s.faultLog = append(s.faultLog, line)
	s.hashNote("fault %s", line)
}

// pickNode draws a node, optionally only data nodes, that is up and not
// paused; 0 if there is none.
func (s *Sim) pickNode(dataOnly bool) uint64 {
	ids := s.nodeIDs
	if dataOnly {
		ids = s.data
	}
	var ok []uint64
	for _, id := range ids {
		if n := s.nodes[id]; !n.down && !n.paused {
			ok = append(ok, id)
		}
	}
	if len(ok) == 0 {
		return 0
	}
	return ok[s.rng.IntN(len(ok))]
}

// rangeLeader returns the node that leads range r at the highest term any
// running node reports, or 0.
func (s *Sim) rangeLeader(r uint64) uint64 {
	var term, leader uint64
	for _, id := range s.nodeIDs {
		n := s.nodes[id]
		if n.down {
			continue
		}
		for _, st := range n.core.RangeStatuses() {
			if st.RangeID == r && st.Leader != 0 && st.Term >= term {
				term, leader = st.Term, st.Leader
			}
		}
	}
	return leader
}

func (s *Sim) runFault(a *action) {
	switch a.kind {
	case actStart:
		if !s.healed {
			s.startFault(a.family)
		}
	case actRestart:
		n := s.nodes[a.node]
		if n.down && n.inc == a.inc {
			s.restart(n)
		}
	case actResume:
		n := s.nodes[a.node]
		if n.paused && n.inc == a.inc {
			s.resume(n)
		}
	case actUncut:
		if s.hasCut(a.cut) {
			s.logFault("heal partition %d (%s)", a.cut.id, a.cut.desc)
		}
		s.removeCut(a.cut)
	case actFlap:
		if !s.hasCut(a.cut) {
			return
		}
		if s.now >= a.until {
			s.logFault("heal flapping partition %d (%s)", a.cut.id, a.cut.desc)
			s.removeCut(a.cut)
			return
		}
		a.cut.active = !a.cut.active
		if a.cut.twin != nil {
			a.cut.twin.active = a.cut.active
		}
		s.hashNote("flap %d %v", a.cut.id, a.cut.active)
		s.schedule(s.now+s.between(flapPeriod), &event{kind: evFault, action: a})
	case actClockOK:
		n := s.nodes[a.node]
		if n.skew != 0 {
			s.logFault("node %d clock back to true time (from %v)", n.id, n.skew)
			n.skew = 0
		}
	case actLossOff:
		s.endLoss(a.window)
	case actDiskOK:
		n := s.nodes[a.node]
		if n.diskExtra != 0 {
			s.logFault("node %d disk back to normal", n.id)
			n.diskExtra = 0
		}
	case actFinalRead:
		s.finalRead(a.key)
	}
}

func (s *Sim) startFault(fam FaultKind) {
	switch fam {
	case FaultPartition:
		s.startPartition()
	case FaultCrash:
		if s.faults.down >= s.cfg.MaxDown {
			return
		}
		id := s.pickNode(false)
		if id == 0 {
			return
		}
		n := s.nodes[id]
		s.crash(n)
		s.schedule(s.now+s.between(crashDur), &event{kind: evFault, action: &action{kind: actRestart, node: id, inc: n.inc}})
	case FaultPause:
		if s.faults.down >= s.cfg.MaxDown {
			return
		}
		id := s.pickNode(false)
		if id == 0 {
			return
		}
		n := s.nodes[id]
		n.paused = true
		s.faults.down++
		s.logFault("pause node %d", id)
		s.schedule(s.now+s.between(pauseDur), &event{kind: evFault, action: &action{kind: actResume, node: id, inc: n.inc}})
	case FaultClock:
		id := s.pickNode(false)
		if id == 0 || s.cfg.MaxClockSkew <= 0 {
			return
		}
		n := s.nodes[id]
		n.skew = time.Duration(s.rng.Int64N(2*int64(s.cfg.MaxClockSkew)+1)) - s.cfg.MaxClockSkew
		s.logFault("node %d clock jumps to %v from true time", id, n.skew)
		s.schedule(s.now+s.between(clockDur), &event{kind: evFault, action: &action{kind: actClockOK, node: id}})
	case FaultLoss, FaultDup:
		w := &lossWindow{loss: 0.02 + 0.2*s.rng.Float64()}
		if fam == FaultDup {
			w = &lossWindow{dup: 0.02 + 0.1*s.rng.Float64()}
		}
		s.faults.losses = append(s.faults.losses, w)
		s.updateLoss()
		s.logFault("network loss %.2f duplication %.2f", w.loss, w.dup)
		s.schedule(s.now+s.between(lossDur), &event{kind: evFault, action: &action{kind: actLossOff, window: w}})
	case FaultDisk:
		id := s.pickNode(false)
		if id == 0 {
			return
		}
		n := s.nodes[id]
		n.diskExtra = time.Duration(50+s.rng.IntN(450)) * time.Millisecond
		if s.rng.IntN(10) == 0 {
			n.diskExtra = 2 * time.Second // a stalled disk
		}
		s.logFault("node %d disk slow: fsync +%v", id, n.diskExtra)
		s.schedule(s.now+s.between(diskDur), &event{kind: evFault, action: &action{kind: actDiskOK, node: id}})
	}
}

func (s *Sim) updateLoss() {
	s.net.lossP, s.net.dupP = 0, 0
	for _, w := range s.faults.losses {
		s.net.lossP = max(s.net.lossP, w.loss)
		s.net.dupP = max(s.net.dupP, w.dup)
	}
}

func (s *Sim) endLoss(w *lossWindow) {
	for i, x := range s.faults.losses {
		if x == w {
			s.faults.losses = append(s.faults.losses[:i], s.faults.losses[i+1:]...)
			s.logFault("network loss window ends")
			break
		}
	}
	s.updateLoss()
}

// startPartition cuts links in one of five shapes.
func (s *Sim) startPartition() {
	all := map[uint64]bool{}
	for _, id := range s.nodeIDs {
		all[id] = true
	}
	others := func(a map[uint64]bool) map[uint64]bool {
		b := map[uint64]bool{}
		for _, id := range s.nodeIDs {
			if !a[id] {
				b[id] = true
			}
		}
		return b
	}
	s.faults.nextCut++
	c := &cut{id: s.faults.nextCut, active: true}
	var flap bool
	switch shape := s.rng.IntN(5); shape {
	case 0, 1: // isolate a node, or the leader of a range
		id := s.pickNode(false)
		if shape == 1 {
			r := uint64(1 + s.rng.IntN(2+s.cfg.Ranges))
			if l := s.rangeLeader(r); l != 0 {
				id = l
				c.desc = fmt.Sprintf("leader of range %d: ", r)
			}
		}
		if id == 0 {
			return
		}
		a := map[uint64]bool{id: true}
		c.from, c.to = a, others(a)
		c.desc += fmt.Sprintf("node %d isolated", id)
		s.addCut(c, true)
	case 2: // symmetric split into two sides
		a := map[uint64]bool{}
		size := 1 + s.rng.IntN(max(1, len(s.nodeIDs)/2))
		for _, i := range s.rng.Perm(len(s.nodeIDs))[:size] {
			a[s.nodeIDs[i]] = true
		}
		c.from, c.to = a, others(a)
		c.desc = fmt.Sprintf("split %v | rest", sortedKeys(a))
		s.addCut(c, true)
	case 3: // one-way: a node cannot send, or cannot receive
		id := s.pickNode(false)
		if id == 0 {
			return
		}
		a := map[uint64]bool{id: true}
		if s.rng.IntN(2) == 0 {
			c.from, c.to = a, others(a)
			c.desc = fmt.Sprintf("node %d cannot send", id)
		} else {
			c.from, c.to = others(a), a
			c.desc = fmt.Sprintf("node %d cannot receive", id)
		}
		s.addCut(c, false)
	case 4: // flapping isolation
		id := s.pickNode(false)
		if id == 0 {
			return
		}
		a := map[uint64]bool{id: true}
		c.from, c.to = a, others(a)
		c.desc = fmt.Sprintf("node %d flapping", id)
		flap = true
		s.addCut(c, true)
	}
	s.logFault("partition %d: %s", c.id, c.desc)
	end := s.now + s.between(partitionDur)
	if flap {
		s.schedule(s.now+s.between(flapPeriod), &event{kind: evFault, action: &action{kind: actFlap, cut: c, until: end}})
		return
	}
	s.schedule(end, &event{kind: evFault, action: &action{kind: actUncut, cut: c}})
}

// addCut installs a partition; a symmetric one also cuts the way back.
func (s *Sim) addCut(c *cut, symmetric bool) {
	s.net.cuts = append(s.net.cuts, c)
	if symmetric {
		back := &cut{id: c.id, desc: c.desc, from: c.to, to: c.from, active: true}
		s.net.cuts = append(s.net.cuts, back)
		c.twin = back
	}
}

func (s *Sim) hasCut(c *cut) bool {
	for _, x := range s.net.cuts {
		if x == c {
			return true
		}
	}
	return false
}

func (s *Sim) removeCut(c *cut) {
	kept := s.net.cuts[:0]
	for _, x := range s.net.cuts {
		if x != c && x != c.twin {
			kept = append(kept, x)
		}
	}
	s.net.cuts = kept
}

// crash stops a node the hard way: in-flight inputs and unsent outputs are
// lost, and so are unsynced writes, except a seeded prefix of them.
func (s *Sim) crash(n *node) {
	s.logFault("crash node %d", n.id)
	n.down, n.paused, n.backlog = true, false, nil
	n.inc++
	n.eng = n.eng.CrashWithPrefix(func(k int) int { return s.rng.IntN(k + 1) })
	n.core = nil
	n.lastRev = map[uint64]int64{}
	s.faults.down++
	s.failPending(n)
	s.stopWatches(n)
}

// restart brings a crashed node back on what its engine kept.
func (s *Sim) restart(n *node) {
	if err := s.startCore(n); err != nil {
		s.violate("recovery", "%v", err)
		s.stopped = true
		return
	}
	n.down = false
	n.lastEmit = s.now
	s.faults.down--
	s.logFault("restart node %d (incarnation %d)", n.id, n.inc)
}

// resume lets a paused node run again: it processes what queued up.
func (s *Sim) resume(n *node) {
	n.paused = false
	s.faults.down--
	s.logFault("resume node %d (%d queued inputs)", n.id, len(n.backlog))
	backlog := n.backlog
	n.backlog = nil
	for _, e := range backlog {
		if n.down || n.paused {
			return
		}
		switch e.kind {
		case evDeliver:
			s.deliver(e)
		case evSubmit:
			s.submit(e)
		}
	}
}

// heal ends every fault: the final quiet period begins.
func (s *Sim) heal() {
	s.healed = true
	s.logFault("heal everything")
	for _, id := range s.nodeIDs {
		n := s.nodes[id]
		// A slow disk's fsyncs already under way still take their time: the
		// outputs they hold leave at slowUntil, and recovery waits for them.
		s.stallEnd = max(s.stallEnd, n.slowUntil)
		if n.down {
			s.restart(n)
		}
		if n.paused {
			s.resume(n)
		}
		n.skew, n.diskExtra = 0, 0
	}
	for _, c := range s.net.cuts {
		c.active = false
	}
	s.net.cuts = nil
	s.faults.losses = nil
	s.updateLoss()
}

// recovered marks the end of recovery: clients run one more deadline's
// worth of operations (which must all end definitely, L2), then stop.
func (s *Sim) recovered() {
	s.recoveredAt = s.now
	s.stopClientsAt = s.now + int64(s.cfg.OpTimeout)
	s.hashNote("recovered")
	if len(s.clients) == 0 {
		s.maybeStartFinal()
	}
}

// recoveryTime is how long after healing the cluster recovered.
func (s *Sim) recoveryTime() time.Duration {
	if s.recoveredAt == math.MaxInt64 {
		return -1
	}
	return dur(s.recoveredAt - s.healAt)
}
