package system

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/tenfold/tenfold/core/host/hosttest"
	"github.com/tenfold/tenfold/core/replica"
	"github.com/tenfold/tenfold/tenfoldpb"
)

// TestSequencerScripts runs the sequencer alone, from the scripts in
// testdata/: one system range replica on a node of one (a single voter, so
// it leads as soon as it campaigns), with no network and no other range.
// Regenerate the expected output with -rewrite and review it like code.
//
//	start [window=W]                 open the range and elect it
//	ask from=N id=I count=C [fast]   a range's request for C revisions
//	                                 (fast: not linearizable); prints the
//	                                 grants and refusals sent
//	restart                          reopen the range from the engine and
//	                                 elect it again (a new term)
//	status                           counter, window end, extension
func TestSequencerScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var sq *seqScript
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "start":
				sq = &seqScript{h: hosttest.New()}
				if d.HasArg("window") {
					d.ScanArgs(t, "window", &sq.h.Cfg.SequencerWindow)
				}
				return sq.open(t)
			case "restart":
				return sq.open(t)
			case "ask":
				var from, id, count uint64
				d.ScanArgs(t, "from", &from)
				d.ScanArgs(t, "id", &id)
				d.ScanArgs(t, "count", &count)
				sq.s.SeqRequest(from, &tenfoldpb.SeqRequest{Id: id, RangeId: from + 100, Count: count, Linearizable: !d.HasArg("fast"), Incarnation: 1})
				sq.settle(t)
				return sq.sent()
			case "status":
				return sq.status()
			}
			d.Fatalf(t, "unknown command %s", d.Cmd)
			return ""
		})
	})
}

type seqScript struct {
	h *hosttest.Host
	r *replica.Replica
	s *Range
}

// open opens the system range from the engine and elects it.
func (sq *seqScript) open(t *testing.T) string {
	r, err := replica.Open(sq.h, &tenfoldpb.RangeDescriptor{RangeId: 2, Replicas: []uint64{1}, Epoch: 1, Kind: tenfoldpb.RangeKind_SYSTEM})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(sq.h, r)
	if err != nil {
		t.Fatal(err)
	}
	r.SetMachine(s)
	sq.r, sq.s = r, s
	if err := r.Campaign(); err != nil {
		t.Fatal(err)
	}
	sq.settle(t)
	return sq.status()
}

// settle runs Ready rounds as the node would, until raft has no more.
func (sq *seqScript) settle(t *testing.T) {
	for range 100 {
		if !sq.r.HasReady() {
			break
		}
		rd := sq.r.Ready()
		b := sq.h.Eng.NewBatch()
		if _, err := sq.r.Persist(b, &rd); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
		b.Close()
		sq.r.Deliver(&rd)
		if err := sq.r.Apply(rd); err != nil {
			t.Fatal(err)
		}
		sq.r.AfterReady()
	}
	if len(sq.h.Failed) > 0 {
		t.Fatalf("the node stopped: %v", sq.h.Failed)
	}
}

// sent prints and forgets the sequencer's answers.
func (sq *seqScript) sent() string {
	var out []string
	for _, m := range sq.h.Sent {
		r := m.GetSeqResponse()
		if r == nil {
			continue
		}
		if r.GetCode() != 0 {
			out = append(out, fmt.Sprintf("n%d <- id=%d refused: %s", m.GetTo(), r.GetId(), r.GetError()))
			continue
		}
		out = append(out, fmt.Sprintf("n%d <- id=%d first=%d count=%d current=%d", m.GetTo(), r.GetId(), r.GetFirst(), r.GetCount(), r.GetCurrent()))
	}
	sq.h.Sent = nil
	if len(out) == 0 {
		return "nothing sent"
	}
	return strings.Join(out, "\n")
}

func (sq *seqScript) status() string {
	s := sq.s
	return fmt.Sprintf("term=%d leader=%t counter=%d window-end=%d extending=%t", s.r.Term(), s.r.IsLeader(), s.counter, s.windowEnd, s.extending)
}
