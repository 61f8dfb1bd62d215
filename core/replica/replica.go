// Package replica is a node's member of one range's raft group: a raft
// RawNode with its storage in the node's engine, elections driven by the
// node's seeded clock, quiescence of idle ranges, and the apply loop. It
// knows nothing of what runs on the range: a StateMachine (the data range,
// the system range or the control range) is handed requests, ticks,
// committed entries, read states and leadership changes through one
// interface, and calls back through the node's Host.
package replica

import (
	"fmt"

	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/core/keys"
	"github.com/tenfold/tenfold/engine"
	"github.com/tenfold/tenfold/tenfoldpb"
	"go.etcd.io/raft/v3"
	raftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Host is what a replica needs from its node.
type Host interface {
	host.Host
	// Touch marks a range as having work for the next Ready round.
	Touch(rangeID uint64)
	// Alive reports whether the control plane (as last heard) considers
	// a node live.
	Alive(node uint64) bool
	// LeaderKnown tells the node a range's raft leader (non-zero).
	LeaderKnown(rangeID, leader uint64)
}

// StateMachine is what runs on a replica: the data range, the system range
// or the control range. The replica calls it from the node's single loop.
type StateMachine interface {
	// Handle serves a request addressed to this range (the replica was
	// woken for it).
	Handle(req *tenfoldpb.Request)
	// Tick runs once per raft tick, after the replica's own timers.
	Tick()
	// Apply applies a committed entry with a command into b (on every
	// replica); the returned functions run once every entry of the round
	// has applied.
	Apply(b engine.Batch, e *raftpb.Entry) ([]func(), error)
	// NewTermApplied: a new leader's empty entry of term applied, so
	// anything proposed here in an older term and not applied never will.
	NewTermApplied(term uint64)
	// ReadState hands over a completed ReadIndex round.
	ReadState(rs raft.ReadState)
	// LostLeadership: this replica was the leader and is not any more.
	LostLeadership()
	// Idle reports whether it needs no ticks, so the range may quiesce.
	Idle() bool
	// Pump runs leader work that depends on the state after a Ready round.
	Pump()
}

// Replica is this node's member of one range's raft group.
type Replica struct {
	h       Host
	sm      StateMachine
	desc    *tenfoldpb.RangeDescriptor
	rn      *raft.RawNode
	storage *raftStorage
	applied AppliedState

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
}

// Open opens the replica of range d from the engine (a new range starts
// empty). The caller attaches its state machine with SetMachine before the
// replica is used.
func Open(h Host, d *tenfoldpb.RangeDescriptor) (*Replica, error) {
	cfg := h.Config()
	st, err := newRaftStorage(h.Engine(), d.GetRangeId(), d.GetReplicas())
	if err != nil {
		return nil, err
	}
	r := &Replica{h: h, desc: d, storage: st}
	if v, ok, err := h.Engine().Get(keys.RangeKey(d.GetRangeId(), keys.SuffixApplied)); err != nil {
		return nil, err
	} else if ok {
		if r.applied, err = decodeAppliedState(v); err != nil {
			return nil, fmt.Errorf("range %d: %w", d.GetRangeId(), err)
		}
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:              h.ID(),
		ElectionTick:    cfg.ElectionTicks,
		HeartbeatTick:   cfg.HeartbeatTicks,
		Storage:         st,
		Applied:         r.applied.Index,
		MaxSizePerMsg:   host.RaftMaxSizePerMsg,
		MaxInflightMsgs: host.RaftMaxInflightMsgs,
		PreVote:         true,
		CheckQuorum:     !cfg.Bugs.NoCheckQuorum,
		Logger:          quietRaftLogger{},
	})
	if err != nil {
		return nil, fmt.Errorf("range %d: %w", d.GetRangeId(), err)
	}
	r.rn = rn
	r.resetElectionTimer()
	return r, nil
}

// SetMachine attaches the state machine that runs on the range.
func (r *Replica) SetMachine(sm StateMachine) { r.sm = sm }

// Machine returns the state machine that runs on the range.
func (r *Replica) Machine() StateMachine { return r.sm }

// Desc returns the range's descriptor.
func (r *Replica) Desc() *tenfoldpb.RangeDescriptor { return r.desc }

// ID returns the range ID.
func (r *Replica) ID() uint64 { return r.desc.GetRangeId() }

// Leader returns the known raft leader (0: unknown); Term the current term.
func (r *Replica) Leader() uint64 { return r.leader }

// Term returns the replica's current raft term.
func (r *Replica) Term() uint64 { return r.term }

// Quiesced reports whether the range is quiesced here.
func (r *Replica) Quiesced() bool { return r.quiesced }

// Applied returns the replica's apply progress. The state machine updates
// the revision fields while it applies an entry; the replica persists them
// with the entry.
func (r *Replica) Applied() *AppliedState { return &r.applied }

// Propose proposes a command (the range's state machine encodes it).
func (r *Replica) Propose(data []byte) error {
	defer r.Touch()
	return r.rn.Propose(data)
}

// ReadIndex starts a ReadIndex round under ctx; its ReadState comes back
// through StateMachine.ReadState.
func (r *Replica) ReadIndex(ctx []byte) {
	r.rn.ReadIndex(ctx)
	r.Touch()
}

// Touch marks the replica's RawNode as possibly having a Ready; every call
// that can change its state must be followed by one.
func (r *Replica) Touch() { r.h.Touch(r.ID()) }

// IsLeader reports whether this replica leads the range.
func (r *Replica) IsLeader() bool { return r.state == raft.StateLeader }

// Fenced reports whether this leader has applied an entry of its own term,
// so its state includes every committed write (the leader's fence).
func (r *Replica) Fenced() bool { return r.IsLeader() && r.applied.Term == r.term }

func (r *Replica) resetElectionTimer() {
	e := r.h.Config().ElectionTicks
	r.electionElapsed = 0
	r.electionTimeout = e + r.h.Config().Rand.IntN(e)
}

// Tick runs one raft tick: a leader ticks raft, a follower or candidate
// its election timer; then the state machine ticks.
func (r *Replica) Tick() {
	if r.quiesced {
		if r.IsLeader() || r.h.Alive(r.leader) {
			return
		}
		// The leader's node is not live: wake up and let the election
		// timer run.
		r.Unquiesce()
	}
	if r.rn.BasicStatus().RaftState == raft.StateLeader {
		// Only a leader ticks raft (heartbeats, and CheckQuorum every
		// election timeout): a follower's or candidate's raft timer would
		// campaign on a timeout drawn from crypto/rand.
		r.rn.Tick()
	}
	r.Touch()
	if r.IsLeader() {
		r.electionElapsed = 0
		if r.Fenced() && r.h.Config().Buggify.Fire(host.BuggifyLeaderTransfer, 0.005) {
			r.transferToUpToDate()
		}
		r.maybeQuiesce()
	} else if r.electionElapsed++; r.electionElapsed >= r.electionTimeout {
		if !r.poked && r.leader != 0 && r.h.Alive(r.leader) {
			// The leader may just have quiesced without us (a lost Quiesce):
			// ask it to wake, and campaign only if it stays silent.
			r.poked = true
			r.electionElapsed = r.electionTimeout - host.PokeTicks
			r.h.Send(r.leader, &tenfoldpb.Message{Body: &tenfoldpb.Message_Quiesce{Quiesce: &tenfoldpb.Quiesce{RangeId: r.ID(), Term: r.term, Wake: true}}})
		} else if !r.h.Config().Bugs.NoReelection || r.rn.BasicStatus().HardState.GetTerm() == 0 {
			r.resetElectionTimer()
			r.poked = false
			_ = r.rn.Campaign()
			r.Touch()
		}
	}
	r.sm.Tick()
}

// Unquiesce makes the range tick again.
func (r *Replica) Unquiesce() {
	if !r.quiesced {
		return
	}
	r.quiesced, r.idleTicks = false, 0
	if !r.IsLeader() {
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
// A range with a leadership transfer under way is busy too: raft drops
// proposals until the transfer ends, and aborts it only on ticks.
func (r *Replica) busy() bool { return !r.sm.Idle() || r.Transferring() }

// Transferring reports whether this leader is handing its range over: raft
// drops every proposal meanwhile, so no write cycle may start (its
// revisions would be granted and never proposed).
func (r *Replica) Transferring() bool { return r.rn.BasicStatus().LeadTransferee != 0 }

// transferToUpToDate hands leadership to the first follower that has the
// whole log (a BUGGIFY perturbation: leader changes without faults). Only
// an idle range is handed over, so no cycle in flight loses its proposal.
func (r *Replica) transferToUpToDate() {
	if !r.sm.Idle() {
		return
	}
	st := r.rn.Status()
	for _, id := range r.desc.GetReplicas() {
		if pr, ok := st.Progress[id]; ok && id != r.h.ID() && pr.Match == r.storage.lastIndex {
			r.rn.TransferLeader(id)
			r.Touch()
			return
		}
	}
}

// maybeQuiesce quiesces an idle leader's range once every follower has the
// whole log and everything is applied.
func (r *Replica) maybeQuiesce() {
	if !r.Fenced() || r.busy() {
		r.idleTicks = 0
		return
	}
	if r.idleTicks++; r.idleTicks < host.QuiesceAfterTicks || r.h.Config().Bugs.NoQuiesce || r.h.Config().Buggify.Fire(host.BuggifyNoQuiesce, 1) {
		return
	}
	st := r.rn.Status()
	last := r.storage.lastIndex
	if st.HardState.GetCommit() != last || r.applied.Index != last {
		return
	}
	for id, pr := range st.Progress {
		if id != r.h.ID() && pr.Match != last {
			return
		}
	}
	r.quiesced = true
	for _, peer := range r.desc.GetReplicas() {
		if peer != r.h.ID() {
			r.h.Send(peer, &tenfoldpb.Message{Body: &tenfoldpb.Message_Quiesce{Quiesce: &tenfoldpb.Quiesce{RangeId: r.ID(), Term: r.term, Commit: last}}})
		}
	}
}

// Quiesce handles a leader's Quiesce at a follower, or a follower's
// request to wake at the leader.
func (r *Replica) Quiesce(from uint64, q *tenfoldpb.Quiesce) {
	if q.GetWake() {
		if r.IsLeader() {
			r.Unquiesce()
		}
		return
	}
	if r.IsLeader() || q.GetTerm() != r.term || from != r.leader {
		return
	}
	if r.rn.BasicStatus().HardState.GetCommit() < q.GetCommit() {
		// Not caught up: keep the leader awake so it brings us up to date.
		r.h.Send(from, &tenfoldpb.Message{Body: &tenfoldpb.Message_Quiesce{Quiesce: &tenfoldpb.Quiesce{RangeId: r.ID(), Term: r.term, Wake: true}}})
		return
	}
	r.quiesced = true
}

// Step delivers a raft message from a peer.
func (r *Replica) Step(m *raftpb.Message) {
	if wakes(m) {
		r.Unquiesce()
	}
	// Hearing from the current leader postpones our own campaign.
	switch m.GetType() {
	case raftpb.MessageType_MsgApp, raftpb.MessageType_MsgHeartbeat, raftpb.MessageType_MsgSnap:
		if m.GetTerm() >= r.term {
			r.electionElapsed = 0
			r.poked = false
		}
	}
	silent := r.electionElapsed >= r.h.Config().ElectionTicks
	if m.GetTerm() > r.term && r.leader != 0 && !r.IsLeader() && (silent || m.GetFrom() == r.leader) {
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
	r.Touch()
}

func (r *Replica) sendRaft(msgs []*raftpb.Message) {
	for _, m := range msgs {
		r.h.Send(m.GetTo(), &tenfoldpb.Message{Body: &tenfoldpb.Message_Raft{Raft: &tenfoldpb.RaftMessage{RangeId: r.ID(), Msg: m}}})
	}
}

func (r *Replica) handleSoftState(ss *raft.SoftState) {
	st := r.rn.BasicStatus()
	r.term = st.HardState.GetTerm()
	if ss == nil {
		return
	}
	wasLeader := r.state == raft.StateLeader
	r.leader, r.state = ss.Lead, ss.RaftState
	if ss.Lead != 0 {
		r.h.LeaderKnown(r.ID(), ss.Lead)
	}
	if wasLeader && r.state != raft.StateLeader {
		r.lostLeadership()
	}
}

func (r *Replica) lostLeadership() { r.sm.LostLeadership() }

func (r *Replica) handleReadStates(rs []raft.ReadState) {
	for _, s := range rs {
		r.sm.ReadState(s)
	}
}

// applyEntries applies committed entries, each in its own engine batch,
// then hands results to waiting requests.
func (r *Replica) applyEntries(ents []*raftpb.Entry) error {
	var after []func()
	for _, e := range ents {
		if e.GetIndex() <= r.applied.Index {
			continue
		}
		if e.GetIndex() != r.applied.Index+1 {
			return fmt.Errorf("range %d: apply gap: applied %d, next entry %d", r.ID(), r.applied.Index, e.GetIndex())
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
func (r *Replica) applyEntry(e *raftpb.Entry) ([]func(), error) {
	b := r.h.Engine().NewBatch()
	defer b.Close()
	var fns []func()
	switch e.GetType() {
	case raftpb.EntryType_EntryNormal:
		if len(e.GetData()) > 0 {
			var err error
			if fns, err = r.applyCommand(b, e); err != nil {
				return nil, err
			}
		} else {
			// A new leader's empty entry: a command proposed here in an
			// older term and not applied before it never will be.
			r.sm.NewTermApplied(e.GetTerm())
		}
	case raftpb.EntryType_EntryConfChange, raftpb.EntryType_EntryConfChangeV2:
		return nil, fmt.Errorf("range %d: conf changes are not supported yet (entry %d)", r.ID(), e.GetIndex())
	}
	r.applied.Index, r.applied.Term = e.GetIndex(), e.GetTerm()
	if err := b.Set(keys.RangeKey(r.ID(), keys.SuffixApplied), r.applied.encode()); err != nil {
		return nil, err
	}
	// Applied state needs no sync of its own: the log is durable, and a
	// crash that loses this batch re-applies the same entries on restart.
	if err := b.Commit(false); err != nil {
		return nil, err
	}
	if host.Expensive {
		if err := r.checkAppliedReadBack(); err != nil {
			return nil, err
		}
	}
	return fns, nil
}

// checkAppliedReadBack (expensive) reads the applied state back from the
// engine: what the next start recovers must be what this replica holds.
func (r *Replica) checkAppliedReadBack() error {
	v, ok, err := r.h.Engine().Get(keys.RangeKey(r.ID(), keys.SuffixApplied))
	if err != nil {
		return err
	}
	got, derr := decodeAppliedState(v)
	if !ok || derr != nil || got != r.applied {
		return host.Violated("applied-readback", "range %d holds applied state %+v, the engine %+v (found %t, %v)", r.ID(), r.applied, got, ok, derr)
	}
	return nil
}

// checkLogReadBack (expensive) reads the last log entry back from the
// engine once the Ready's writes are committed: raft reads its log from
// there, and the cached bounds must match it.
func (r *Replica) checkLogReadBack() {
	last, err := r.storage.readLast()
	if err != nil {
		r.h.Fail(err)
		return
	}
	host.Assert(r.h, last.GetIndex() == r.storage.lastIndex && last.GetTerm() == r.storage.lastTerm, "log-readback",
		"range %d caches last log entry %d/%d, the engine holds %d/%d", r.ID(), r.storage.lastIndex, r.storage.lastTerm, last.GetIndex(), last.GetTerm())
}

func (r *Replica) applyCommand(b engine.Batch, e *raftpb.Entry) ([]func(), error) {
	return r.sm.Apply(b, e)
}

// AfterReady runs leader work that depends on the state after this round.
func (r *Replica) AfterReady() { r.sm.Pump() }

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

// HasReady reports whether raft has work for a Ready round.
func (r *Replica) HasReady() bool { return r.rn.HasReady() }

// Ready takes raft's Ready; the node persists it (Persist), syncs, then
// calls Deliver and Apply.
func (r *Replica) Ready() raft.Ready { return r.rn.Ready() }

// Persist writes rd's entries and hard state into b, and reports whether
// they need a sync before anything that depends on them goes out.
func (r *Replica) Persist(b engine.Batch, rd *raft.Ready) (bool, error) {
	if err := r.storage.append(b, rd.Entries, rd.HardState); err != nil {
		return false, err
	}
	return len(rd.Entries) > 0 || (rd.HardState != nil && !raft.IsEmptyHardState(rd.HardState)), nil
}

// Deliver sends rd's messages and takes its soft state and read states;
// call it once rd is persisted.
func (r *Replica) Deliver(rd *raft.Ready) {
	if host.Expensive && len(rd.Entries) > 0 {
		r.checkLogReadBack()
	}
	r.sendRaft(rd.Messages)
	r.handleSoftState(rd.SoftState)
	r.handleReadStates(rd.ReadStates)
}

// Apply applies rd's committed entries and advances raft.
func (r *Replica) Apply(rd raft.Ready) error {
	if err := r.applyEntries(rd.CommittedEntries); err != nil {
		return err
	}
	r.rn.Advance(rd)
	// Advance steps the leader's own acknowledgements: look again.
	r.Touch()
	return nil
}

// Campaign starts an election now, as the election timer does (PreVote;
// refused while the voters hear from a leader). For tests.
func (r *Replica) Campaign() error {
	defer r.Touch()
	return r.rn.Campaign()
}

// TakeOver starts an election now, as a leadership transfer does (no
// PreVote; voters ignore their CheckQuorum lease). For tests.
func (r *Replica) TakeOver() error {
	defer r.Touch()
	return r.rn.Step(&raftpb.Message{Type: raftpb.MessageType_MsgTimeoutNow.Enum(), From: proto.Uint64(r.leader), To: proto.Uint64(r.h.ID())})
}
