package core

import (
	"fmt"
	"math"

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

	data *dataState   // DATA ranges
	sys  *systemState // the SYSTEM range
}

// raftElectionTicks is raft's own election timeout, set beyond reach: the
// replica campaigns itself (see electionTimeout).
const raftElectionTicks = math.MaxInt32 / 2

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
		ElectionTick:    raftElectionTicks,
		HeartbeatTick:   n.cfg.HeartbeatTicks,
		Storage:         st,
		Applied:         r.applied.index,
		MaxSizePerMsg:   1 << 20,
		MaxInflightMsgs: 256,
		PreVote:         true,
		Logger:          quietRaftLogger{},
	})
	if err != nil {
		return nil, fmt.Errorf("range %d: %w", d.GetRangeId(), err)
	}
	r.rn = rn
	r.resetElectionTimer()
	switch d.GetKind() {
	case tenfoldpb.RangeKind_DATA:
		r.data = newDataState(r)
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

func (r *replica) isLeader() bool { return r.state == raft.StateLeader }

// ready reports whether this leader has applied an entry of its own term,
// so its state includes every committed write (the leader's fence).
func (r *replica) fenced() bool { return r.isLeader() && r.applied.term == r.term }

func (r *replica) resetElectionTimer() {
	e := r.n.cfg.ElectionTicks
	r.electionElapsed = 0
	r.electionTimeout = e + r.n.cfg.Rand.IntN(e)
}

func (r *replica) tick() {
	r.rn.Tick()
	if r.state == raft.StateLeader {
		r.electionElapsed = 0
	} else if r.electionElapsed++; r.electionElapsed >= r.electionTimeout {
		r.resetElectionTimer()
		_ = r.rn.Campaign()
	}
	if r.data != nil {
		r.data.tick()
	}
	if r.sys != nil {
		r.sys.tick()
	}
}

func (r *replica) step(m *raftpb.Message) {
	// Hearing from the current leader postpones our own campaign.
	switch m.GetType() {
	case raftpb.MessageType_MsgApp, raftpb.MessageType_MsgHeartbeat, raftpb.MessageType_MsgSnap:
		if m.GetTerm() >= r.term {
			r.electionElapsed = 0
		}
	}
	_ = r.rn.Step(m)
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
