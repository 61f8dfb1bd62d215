package core

import (
	"fmt"

	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/tenfoldpb"
	"go.etcd.io/raft/v3"
	raftpb "go.etcd.io/raft/v3/raftpb"
)

const (
	controlRangeID = 1 // the control plane's raft group
	systemRangeID  = 2 // sequencer and lease table
	firstDataRange = 3
)

// replica is this node's member of one range's raft group.
type replica struct {
	n       *Node
	desc    *tenfoldpb.RangeDescriptor
	rn      *raft.RawNode
	storage *raftStorage
	applied appliedState

	// Elections are driven here, not by raft's own timer, so that the
	// timeout is drawn from the node's seeded source (raft's own uses
	// crypto/rand, which would make simulation runs unrepeatable).
	electionElapsed int
	electionTimeout int

	leader uint64 // known raft leader (0: unknown)
	term   uint64
	state  raft.StateType

	// quiesced ranges are not ticked: no heartbeats, no election timer.
	// An idle, fully replicated range costs no messages at all.
	quiesced  bool
	idleTicks int
	// poked: this follower's election timer fired and it asked the leader
	// to wake instead of campaigning; the next expiry campaigns.
	poked bool

	data *dataState   // DATA ranges
	sys  *systemState // the SYSTEM range
}

func (n *Node) openReplica(d *tenfoldpb.RangeDescriptor) (*replica, error) {
	st, err := newRaftStorage(n.eng, d.GetRangeId(), d.GetReplicas())
	if err != nil {
		return nil, err
	}
	r := &replica{n: n, desc: d, storage: st}
	if v, ok, err := n.eng.Get(rangeKey(d.GetRangeId(), suffixApplied)); err != nil {
		return nil, err
	} else if ok {
		if r.applied, err = decodeAppliedState(v); err != nil {
			return nil, fmt.Errorf("range %d: %w", d.GetRangeId(), err)
		}
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:              n.id,
		ElectionTick:    n.cfg.ElectionTicks,
		HeartbeatTick:   n.cfg.HeartbeatTicks,
		Storage:         st,
		Applied:         r.applied.index,
		MaxSizePerMsg:   1 << 20,
		MaxInflightMsgs: 256,
		PreVote:         true,
		CheckQuorum:     !n.cfg.Bugs.NoCheckQuorum,
		Logger:          quietRaftLogger{},
	})
	if err != nil {
		return nil, fmt.Errorf("range %d: %w", d.GetRangeId(), err)
	}
	r.rn = rn
	r.resetElectionTimer()
	switch d.GetKind() {
	case tenfoldpb.RangeKind_DATA:
		if r.data, err = newDataState(r); err != nil {
			return nil, fmt.Errorf("range %d: %w", d.GetRangeId(), err)
		}
	case tenfoldpb.RangeKind_SYSTEM:
		s, err := newSystemState(r)
		if err != nil {
			return nil, err
		}
		r.sys = s
	case tenfoldpb.RangeKind_CONTROL:
		if n.ctl == nil {
			n.ctl = newControlState(n)
		}
		if err := n.ctl.load(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *replica) id() uint64 { return r.desc.GetRangeId() }

// touch marks the replica's RawNode as possibly having a Ready; every call
// that can change its state must be followed by one.
func (r *replica) touch() { r.n.dirty[r.id()] = true }

func (r *replica) isLeader() bool { return r.state == raft.StateLeader }

// ready reports whether this leader has applied an entry of its own term,
// so its state includes every committed write (the leader's fence).
func (r *replica) fenced() bool { return r.isLeader() && r.applied.term == r.term }

func (r *replica) resetElectionTimer() {
	e := r.n.cfg.ElectionTicks
	r.electionElapsed = 0
	r.electionTimeout = e + r.n.cfg.Rand.IntN(e)
}

// quiesceAfterTicks is how long a leader waits with nothing to do before
// it quiesces its range.
const quiesceAfterTicks = 3

// pokeTicks is how long a follower waits for a poked leader to answer.
const pokeTicks = 3

func (r *replica) tick() {
	if r.quiesced {
		if r.isLeader() || r.n.alive(r.leader) {
			return
		}
		// The leader's node is not live: wake up and let the election
		// timer run.
		r.unquiesce()
	}
	if r.rn.BasicStatus().RaftState == raft.StateLeader {
		// Only a leader ticks raft (heartbeats, and CheckQuorum every
		// election timeout): a follower's or candidate's raft timer would
		// campaign on a timeout drawn from crypto/rand.
		r.rn.Tick()
	}
	r.touch()
	if r.isLeader() {
		r.electionElapsed = 0
		r.maybeQuiesce()
	} else if r.electionElapsed++; r.electionElapsed >= r.electionTimeout {
		if !r.poked && r.leader != 0 && r.n.alive(r.leader) {
			// The leader may just have quiesced without us (a lost Quiesce):
			// ask it to wake, and campaign only if it stays silent.
			r.poked = true
			r.electionElapsed = r.electionTimeout - pokeTicks
			r.n.send(r.leader, &tenfoldpb.Message{Body: &tenfoldpb.Message_Quiesce{Quiesce: &tenfoldpb.Quiesce{RangeId: r.id(), Term: r.term, Wake: true}}})
		} else if !r.n.cfg.Bugs.NoReelection || r.rn.BasicStatus().HardState.GetTerm() == 0 {
			r.resetElectionTimer()
			r.poked = false
			_ = r.rn.Campaign()
			r.touch()
		}
	}
	if r.data != nil {
		r.data.tick()
	}
	if r.sys != nil {
		r.sys.tick()
	}
}

// unquiesce makes the range tick again.
func (r *replica) unquiesce() {
	if !r.quiesced {
		return
	}
	r.quiesced, r.idleTicks = false, 0
	if !r.isLeader() {
		r.resetElectionTimer()
	}
}

// wakes reports whether a message needs a quiesced replica to tick again.
// Heartbeats and successful acknowledgements carry no news: a quiesced
// follower keeps stepping them (raft state stays current) without ticking,
// and a quiesced leader must not be woken by the answers to its own last
// heartbeat. New entries, votes, rejections and read requests wake it.
func wakes(m *raftpb.Message) bool {
	switch m.GetType() {
	case raftpb.MessageType_MsgHeartbeat, raftpb.MessageType_MsgHeartbeatResp:
		return false
	case raftpb.MessageType_MsgAppResp:
		return m.GetReject()
	}
	return true
}

// busy reports whether the range's state machine has work that needs ticks.
func (r *replica) busy() bool {
	switch {
	case r.data != nil:
		return !r.data.idle()
	case r.sys != nil:
		return !r.sys.idle()
	}
	return true // the control range is never idle: keepalives keep coming
}

// maybeQuiesce quiesces an idle leader's range once every follower has the
// whole log and everything is applied.
func (r *replica) maybeQuiesce() {
	if !r.fenced() || r.busy() {
		if r.idleTicks > 0 {
		}
		r.idleTicks = 0
		return
	}
	if r.idleTicks++; r.idleTicks < quiesceAfterTicks || r.n.cfg.Bugs.NoQuiesce {
		return
	}
	st := r.rn.Status()
	last := r.storage.lastIndex
	if st.HardState.GetCommit() != last || r.applied.index != last {
		return
	}
	for id, pr := range st.Progress {
		if id != r.n.id && pr.Match != last {
			return
		}
	}
	r.quiesced = true
	for _, peer := range r.desc.GetReplicas() {
		if peer != r.n.id {
			r.n.send(peer, &tenfoldpb.Message{Body: &tenfoldpb.Message_Quiesce{Quiesce: &tenfoldpb.Quiesce{RangeId: r.id(), Term: r.term, Commit: last}}})
		}
	}
}

// quiesce handles a leader's Quiesce at a follower.
func (r *replica) quiesce(from uint64, q *tenfoldpb.Quiesce) {
	if q.GetWake() {
		if r.isLeader() {
			r.unquiesce()
		}
		return
	}
	if r.isLeader() || q.GetTerm() != r.term || from != r.leader {
		return
	}
	if r.rn.BasicStatus().HardState.GetCommit() < q.GetCommit() {
		// Not caught up: keep the leader awake so it brings us up to date.
		r.n.send(from, &tenfoldpb.Message{Body: &tenfoldpb.Message_Quiesce{Quiesce: &tenfoldpb.Quiesce{RangeId: r.id(), Term: r.term, Wake: true}}})
		return
	}
	r.quiesced = true
}

func (r *replica) step(m *raftpb.Message) {
	if wakes(m) {
		r.unquiesce()
	}
	// Hearing from the current leader postpones our own campaign.
	switch m.GetType() {
	case raftpb.MessageType_MsgApp, raftpb.MessageType_MsgHeartbeat, raftpb.MessageType_MsgSnap:
		if m.GetTerm() >= r.term {
			r.electionElapsed = 0
			r.poked = false
		}
	}
	silent := r.electionElapsed >= r.n.cfg.ElectionTicks
	if m.GetTerm() > r.term && r.leader != 0 && !r.isLeader() && (silent || m.GetFrom() == r.leader) {
		switch m.GetType() {
		case raftpb.MessageType_MsgPreVote, raftpb.MessageType_MsgVote:
			// CheckQuorum's follower side: raft refuses votes while it
			// knows a leader, since its own timer (not ticked here) never
			// runs out. Forget the leader, so the vote is judged on logs,
			// when our timer says it has been silent for an election
			// timeout, or when the candidate is that leader itself: it
			// stepped down (CheckQuorum, after a stall), and heartbeats it
			// sent before, delivered late, must not make us refuse it.
			r.rn.ForgetLeader()
		}
	}
	_ = r.rn.Step(m)
	r.touch()
}

func (r *replica) sendRaft(msgs []*raftpb.Message) {
	for _, m := range msgs {
		r.n.send(m.GetTo(), &tenfoldpb.Message{Body: &tenfoldpb.Message_Raft{Raft: &tenfoldpb.RaftMessage{RangeId: r.id(), Msg: m}}})
	}
}

func (r *replica) handleSoftState(ss *raft.SoftState) {
	st := r.rn.BasicStatus()
	r.term = st.HardState.GetTerm()
	if ss == nil {
		return
	}
	wasLeader := r.state == raft.StateLeader
	r.leader, r.state = ss.Lead, ss.RaftState
	if ss.Lead != 0 {
		r.n.leaderHint[r.id()] = ss.Lead
		r.n.client.leaderKnown(r.id())
	}
	if wasLeader && r.state != raft.StateLeader {
		r.lostLeadership()
	}
}

func (r *replica) lostLeadership() {
	if r.data != nil {
		r.data.lostLeadership()
	}
	if r.sys != nil {
		r.sys.lostLeadership()
	}
	if r.id() == controlRangeID && r.n.ctl != nil {
		r.n.ctl.lostLeadership()
	}
}

func (r *replica) handleReadStates(rs []raft.ReadState) {
	for _, s := range rs {
		if r.data != nil {
			r.data.readState(s)
		}
		if r.sys != nil {
			r.sys.readState(s)
		}
	}
}

// applyEntries applies committed entries, each in its own engine batch,
// then hands results to waiting requests.
func (r *replica) applyEntries(ents []*raftpb.Entry) error {
	var after []func()
	for _, e := range ents {
		if e.GetIndex() <= r.applied.index {
			continue
		}
		if e.GetIndex() != r.applied.index+1 {
			return fmt.Errorf("range %d: apply gap: applied %d, next entry %d", r.id(), r.applied.index, e.GetIndex())
		}
		fns, err := r.applyEntry(e)
		if err != nil {
			return err
		}
		after = append(after, fns...)
	}
	for _, f := range after {
		f()
	}
	return nil
}

// applyEntry applies one committed entry in its own engine batch: the state
// machines read the engine, not the batch, so each entry must see the
// writes of the entries before it committed.
func (r *replica) applyEntry(e *raftpb.Entry) ([]func(), error) {
	b := r.n.eng.NewBatch()
	defer b.Close()
	var fns []func()
	switch e.GetType() {
	case raftpb.EntryType_EntryNormal:
		if len(e.GetData()) > 0 {
			var err error
			if fns, err = r.applyCommand(b, e); err != nil {
				return nil, err
			}
		} else if r.data != nil {
			// A new leader's empty entry: a batch proposed here in an
			// older term and not applied before it never will be.
			r.data.failStaleCycle(e.GetTerm())
		} else if r.sys != nil {
			r.sys.failStaleProposals(e.GetTerm())
		}
	case raftpb.EntryType_EntryConfChange, raftpb.EntryType_EntryConfChangeV2:
		return nil, fmt.Errorf("range %d: conf changes are not supported yet (entry %d)", r.id(), e.GetIndex())
	}
	r.applied.index, r.applied.term = e.GetIndex(), e.GetTerm()
	if err := b.Set(rangeKey(r.id(), suffixApplied), r.applied.encode()); err != nil {
		return nil, err
	}
	// Applied state needs no sync of its own: the log is durable, and a
	// crash that loses this batch re-applies the same entries on restart.
	if err := b.Commit(false); err != nil {
		return nil, err
	}
	return fns, nil
}

func (r *replica) applyCommand(b engine.Batch, e *raftpb.Entry) ([]func(), error) {
	switch {
	case r.data != nil:
		return r.data.apply(b, e)
	case r.sys != nil:
		return r.sys.apply(b, e)
	case r.id() == controlRangeID && r.n.ctl != nil:
		return r.n.ctl.apply(b, e)
	}
	return nil, nil
}

// afterReady runs leader work that depends on the state after this round.
func (r *replica) afterReady() {
	if r.data != nil {
		r.data.pump()
	}
	if r.sys != nil {
		r.sys.pump()
	}
	if r.id() == controlRangeID && r.n.ctl != nil {
		r.n.ctl.pump()
	}
}

// quietRaftLogger drops raft's informational logging; warnings and errors
// surface as panics or returned errors where they matter.
type quietRaftLogger struct{}

func (quietRaftLogger) Debug(...interface{})            {}
func (quietRaftLogger) Debugf(string, ...interface{})   {}
func (quietRaftLogger) Error(...interface{})            {}
func (quietRaftLogger) Errorf(string, ...interface{})   {}
func (quietRaftLogger) Info(...interface{})             {}
func (quietRaftLogger) Infof(string, ...interface{})    {}
func (quietRaftLogger) Warning(...interface{})          {}
func (quietRaftLogger) Warningf(string, ...interface{}) {}
func (quietRaftLogger) Fatal(v ...interface{})          { panic(fmt.Sprint(v...)) }
func (quietRaftLogger) Fatalf(f string, v ...interface{}) {
	panic(fmt.Sprintf(f, v...))
}
func (quietRaftLogger) Panic(v ...interface{}) { panic(fmt.Sprint(v...)) }
func (quietRaftLogger) Panicf(f string, v ...interface{}) {
	panic(fmt.Sprintf(f, v...))
}
