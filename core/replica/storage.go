package replica

import (
	"encoding/binary"
	"fmt"

	"github.com/tenfold/tenfold/core/keys"
	"github.com/tenfold/tenfold/engine"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// raftStorage is raft.Storage over the node's engine. The log of a range
// lives under 'r'+be64(range)+'l'+be64(index); raft only reads entries the
// core has already written (Ready persists before Advance), so the engine is
// the single source of truth and only the bounds are cached.
type raftStorage struct {
	eng       engine.Engine
	rangeID   uint64
	hard      *pb.HardState
	conf      *pb.ConfState
	lastIndex uint64
	lastTerm  uint64
}

func newRaftStorage(eng engine.Engine, rangeID uint64, voters []uint64) (*raftStorage, error) {
	s := &raftStorage{eng: eng, rangeID: rangeID, hard: &pb.HardState{}, conf: &pb.ConfState{Voters: append([]uint64(nil), voters...)}}
	if v, ok, err := eng.Get(keys.RangeKey(rangeID, keys.SuffixHard)); err != nil {
		return nil, err
	} else if ok {
		if err := proto.Unmarshal(v, s.hard); err != nil {
			return nil, fmt.Errorf("range %d: decode hard state: %w", rangeID, err)
		}
	}
	last, err := s.readLast()
	if err != nil {
		return nil, err
	}
	s.lastIndex, s.lastTerm = last.GetIndex(), last.GetTerm()
	return s, nil
}

// readLast reads the last log entry from the engine (an empty entry if
// the log is empty).
func (s *raftStorage) readLast() (*pb.Entry, error) {
	it, err := s.eng.NewIter(engine.IterOptions{LowerBound: keys.LogKey(s.rangeID, 0), UpperBound: keys.RangeKey(s.rangeID, keys.SuffixLog+1)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	e := &pb.Entry{}
	if it.Last() {
		if err := proto.Unmarshal(it.Value(), e); err != nil {
			return nil, fmt.Errorf("range %d: decode last log entry: %w", s.rangeID, err)
		}
	}
	return e, nil
}

// InitialState implements raft.Storage.
func (s *raftStorage) InitialState() (*pb.HardState, *pb.ConfState, error) {
	return proto.Clone(s.hard).(*pb.HardState), proto.Clone(s.conf).(*pb.ConfState), nil
}

// Entries implements raft.Storage.
func (s *raftStorage) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	if lo < 1 {
		return nil, raft.ErrCompacted
	}
	if hi > s.lastIndex+1 {
		return nil, raft.ErrUnavailable
	}
	it, err := s.eng.NewIter(engine.IterOptions{LowerBound: keys.LogKey(s.rangeID, lo), UpperBound: keys.LogKey(s.rangeID, hi)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []*pb.Entry
	var size uint64
	next := lo
	for ok := it.First(); ok; ok = it.Next() {
		e := &pb.Entry{}
		if err := proto.Unmarshal(it.Value(), e); err != nil {
			return nil, fmt.Errorf("range %d: decode log entry: %w", s.rangeID, err)
		}
		if e.GetIndex() != next {
			return nil, fmt.Errorf("range %d: log hole: want index %d, found %d", s.rangeID, next, e.GetIndex())
		}
		next++
		size += uint64(proto.Size(e))
		if len(out) > 0 && size > maxSize {
			break
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, raft.ErrUnavailable
	}
	return out, nil
}

// Term implements raft.Storage.
func (s *raftStorage) Term(i uint64) (uint64, error) {
	if i == 0 {
		return 0, nil
	}
	if i > s.lastIndex {
		return 0, raft.ErrUnavailable
	}
	if i == s.lastIndex {
		return s.lastTerm, nil
	}
	v, ok, err := s.eng.Get(keys.LogKey(s.rangeID, i))
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, raft.ErrUnavailable
	}
	e := &pb.Entry{}
	if err := proto.Unmarshal(v, e); err != nil {
		return 0, err
	}
	return e.GetTerm(), nil
}

// LastIndex implements raft.Storage.
func (s *raftStorage) LastIndex() (uint64, error) { return s.lastIndex, nil }

// FirstIndex implements raft.Storage. The log is never truncated yet.
func (s *raftStorage) FirstIndex() (uint64, error) { return 1, nil }

// Snapshot implements raft.Storage. Logs are not truncated, so raft never
// needs a snapshot.
func (s *raftStorage) Snapshot() (*pb.Snapshot, error) {
	return nil, raft.ErrSnapshotTemporarilyUnavailable
}

// append writes entries (replacing any conflicting suffix) and the hard
// state into b. The in-memory bounds move immediately: the caller commits b
// before raft can read them.
func (s *raftStorage) append(b engine.Batch, ents []*pb.Entry, hs *pb.HardState) error {
	if len(ents) > 0 {
		first := ents[0].GetIndex()
		if first <= s.lastIndex {
			if err := b.DeleteRange(keys.LogKey(s.rangeID, first), keys.LogKey(s.rangeID, s.lastIndex+1)); err != nil {
				return err
			}
		}
		for _, e := range ents {
			v, err := proto.Marshal(e)
			if err != nil {
				return err
			}
			if err := b.Set(keys.LogKey(s.rangeID, e.GetIndex()), v); err != nil {
				return err
			}
		}
		last := ents[len(ents)-1]
		s.lastIndex, s.lastTerm = last.GetIndex(), last.GetTerm()
	}
	if hs != nil && !raft.IsEmptyHardState(hs) {
		s.hard = proto.Clone(hs).(*pb.HardState)
		v, err := proto.Marshal(hs)
		if err != nil {
			return err
		}
		if err := b.Set(keys.RangeKey(s.rangeID, keys.SuffixHard), v); err != nil {
			return err
		}
	}
	return nil
}

// AppliedState is a replica's persisted apply progress.
type AppliedState struct {
	Index     uint64 // last applied log index
	Term      uint64 // term of that entry
	Revision  int64  // highest revision written by this range
	Closed    int64  // the range never writes at or below this revision again
	Compacted int64  // history below this revision is gone
}

func (a AppliedState) encode() []byte {
	b := make([]byte, 0, 40)
	b = binary.BigEndian.AppendUint64(b, a.Index)
	b = binary.BigEndian.AppendUint64(b, a.Term)
	b = binary.BigEndian.AppendUint64(b, uint64(a.Revision))
	b = binary.BigEndian.AppendUint64(b, uint64(a.Closed))
	return binary.BigEndian.AppendUint64(b, uint64(a.Compacted))
}

func decodeAppliedState(b []byte) (AppliedState, error) {
	if len(b) != 40 {
		return AppliedState{}, fmt.Errorf("applied state: want 40 bytes, got %d", len(b))
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[i*8:]) }
	return AppliedState{Index: u(0), Term: u(1), Revision: int64(u(2)), Closed: int64(u(3)), Compacted: int64(u(4))}, nil
}
