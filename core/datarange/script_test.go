package datarange

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/tenfold/tenfold/core/host"
	"github.com/tenfold/tenfold/core/host/hosttest"
	"github.com/tenfold/tenfold/core/replica"
	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// TestCycleScripts runs the data cycle alone, from the scripts in
// testdata/: one data range replica on a node of one (a single voter, so
// it leads), with the sequencer played by the script. Regenerate the
// expected output with -rewrite and review it like code.
//
//	start                         open the range and elect it
//	put key=k value=v id=I        a client's put (origin n9); prints the
//	                              sequencer requests the range makes
//	get key=k id=I                a linearizable read
//	grant first=F current=C       answer the last sequencer request with
//	                              its count of revisions from F; prints
//	                              what the range answers
//	tick [count=K]                K ticks of 100ms; prints new requests
//	status                        applied index, revision, closed
func TestCycleScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var cs *cycleScript
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd == "start" {
				cs = &cycleScript{h: hosttest.New()}
				cs.open(t)
				return cs.status()
			}
			switch d.Cmd {
			case "put", "get":
				var key, value string
				var id uint64
				d.ScanArgs(t, "key", &key)
				d.ScanArgs(t, "id", &id)
				kind, msg := tenfoldpb.RequestKind_RANGE, proto.Message(&pb.RangeRequest{Key: []byte(key)})
				if d.Cmd == "put" {
					d.ScanArgs(t, "value", &value)
					kind, msg = tenfoldpb.RequestKind_PUT, &pb.PutRequest{Key: []byte(key), Value: []byte(value)}
				}
				payload, err := proto.Marshal(msg)
				if err != nil {
					t.Fatal(err)
				}
				cs.d.Handle(&tenfoldpb.Request{Id: id, Origin: 9, OriginIncarnation: 1, MinPending: 1, RangeId: 3, Kind: kind, Payload: payload})
				cs.settle(t)
				return cs.out()
			case "grant":
				var first, current int64
				d.ScanArgs(t, "first", &first)
				d.ScanArgs(t, "current", &current)
				a := cs.h.Asked[len(cs.h.Asked)-1]
				taken := cs.d.SeqGranted(1, &tenfoldpb.SeqResponse{Id: a.ID, RangeId: 3, First: first, Count: a.Count, Current: current, Incarnation: 1})
				cs.settle(t)
				return fmt.Sprintf("taken=%t\n%s", taken, cs.out())
			case "tick":
				count := 1
				if d.HasArg("count") {
					d.ScanArgs(t, "count", &count)
				}
				for range count {
					cs.h.Clock = cs.h.Clock.Add(100 * time.Millisecond)
					cs.r.Tick()
					cs.settle(t)
				}
				return cs.out()
			case "status":
				return cs.status()
			}
			d.Fatalf(t, "unknown command %s", d.Cmd)
			return ""
		})
	})
}

type cycleScript struct {
	h      *hosttest.Host
	r      *replica.Replica
	d      *Range
	nAsked int
}

func (cs *cycleScript) open(t *testing.T) {
	r, err := replica.Open(cs.h, &tenfoldpb.RangeDescriptor{RangeId: 3, Replicas: []uint64{1}, Epoch: 1, Kind: tenfoldpb.RangeKind_DATA})
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cs.h, r)
	if err != nil {
		t.Fatal(err)
	}
	r.SetMachine(d)
	cs.r, cs.d = r, d
	if err := r.Campaign(); err != nil {
		t.Fatal(err)
	}
	cs.settle(t)
}

// settle runs Ready rounds as the node would, until raft has no more.
func (cs *cycleScript) settle(t *testing.T) {
	for range 100 {
		if !cs.r.HasReady() {
			break
		}
		rd := cs.r.Ready()
		b := cs.h.Eng.NewBatch()
		if _, err := cs.r.Persist(b, &rd); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
		b.Close()
		cs.r.Deliver(&rd)
		if err := cs.r.Apply(rd); err != nil {
			t.Fatal(err)
		}
		cs.r.AfterReady()
	}
	if len(cs.h.Failed) > 0 {
		t.Fatalf("the node stopped: %v", cs.h.Failed)
	}
}

// out prints and forgets the sequencer requests and the answers since the
// last call.
func (cs *cycleScript) out() string {
	var out []string
	for _, a := range cs.h.Asked[cs.nAsked:] {
		out = append(out, fmt.Sprintf("ask sequencer: id=%d count=%d attempt=%d", a.ID, a.Count, a.Attempt))
	}
	cs.nAsked = len(cs.h.Asked)
	for _, m := range cs.h.Sent {
		r := m.GetResponse()
		if r == nil {
			continue
		}
		if r.GetError() != "" {
			out = append(out, fmt.Sprintf("n%d <- #%d %s", m.GetTo(), r.GetId(), r.GetError()))
			continue
		}
		resp, err := host.DecodeResponse(r.GetKind(), r.GetPayload())
		if err != nil {
			out = append(out, fmt.Sprintf("n%d <- #%d undecodable: %v", m.GetTo(), r.GetId(), err))
			continue
		}
		switch x := resp.(type) {
		case *pb.PutResponse:
			out = append(out, fmt.Sprintf("n%d <- #%d put ok rev=%d", m.GetTo(), r.GetId(), x.GetHeader().GetRevision()))
		case *pb.RangeResponse:
			var kvs []string
			for _, kv := range x.GetKvs() {
				kvs = append(kvs, fmt.Sprintf("%s=%s@%d", kv.Key, kv.Value, kv.ModRevision))
			}
			out = append(out, fmt.Sprintf("n%d <- #%d get rev=%d [%s]", m.GetTo(), r.GetId(), x.GetHeader().GetRevision(), strings.Join(kvs, " ")))
		}
	}
	cs.h.Sent = nil
	if len(out) == 0 {
		return "nothing"
	}
	return strings.Join(out, "\n")
}

func (cs *cycleScript) status() string {
	a := cs.r.Applied()
	return fmt.Sprintf("leader=%t applied=%d revision=%d closed=%d", cs.r.IsLeader(), a.Index, a.Revision, a.Closed)
}
