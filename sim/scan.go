package sim

import (
	"fmt"
	"slices"
	"time"

	"github.com/tenfold/tenfold/tenfoldpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// scanEvery is how often, during the active phase and until clients stop,
// a read across every key group (hence across ranges) is sent to a random
// data node, for S8.
const scanEvery = time.Second

// scanResult is a served read across ranges: its header revision and what
// it returned, judged at the end of the run against the applied events.
type scanResult struct {
	at       time.Duration
	revision int64
	kvs      map[string]string
	modRevs  map[string]int64
}

// scan sends the next read of the whole client keyspace ([k, l): every key
// group, so every range holding client keys).
func (s *Sim) scan() {
	if s.stopped || s.now >= s.stopClientsAt {
		return
	}
	s.schedule(s.now+int64(scanEvery), &event{kind: evScan})
	node := s.data[s.rng.IntN(len(s.data))]
	s.issue(&pendingOp{scan: true, final: -1, node: node}, tenfoldpb.RequestKind_RANGE, &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")})
}

// scanAnswered records a served scan. Reads across ranges are served (by
// parts at one revision), so a refusal with FailedPrecondition breaks S8;
// other errors (no leader, timeouts) say nothing.
func (s *Sim) scanAnswered(resp any, err error) {
	if err != nil {
		s.stats.countError(err)
		if status.Code(err) == codes.FailedPrecondition {
			s.inv.once("S8/refused", "S8", "a read across ranges was refused: %v", err)
		}
		return
	}
	rr, ok := resp.(*pb.RangeResponse)
	if !ok || rr.Header == nil {
		s.violate("harness", "scan answered with %T, want a RangeResponse with a header", resp)
		return
	}
	r := scanResult{at: dur(s.now), revision: rr.Header.Revision, kvs: map[string]string{}, modRevs: map[string]int64{}}
	for _, kv := range rr.Kvs {
		r.kvs[string(kv.Key)], r.modRevs[string(kv.Key)] = string(kv.Value), kv.ModRevision
	}
	s.scans = append(s.scans, r)
}

// checkScans checks S8 on every served scan: it shows the whole keyspace at
// its header revision R, i.e. every client key holds what the latest event
// at or below R (applied by the replicas) left, and nothing above R.
func (s *Sim) checkScans() {
	for i, sc := range s.scans {
		for _, k := range s.keys {
			want, present, wantRev := s.inv.stateAt(k, sc.revision)
			got, ok := sc.kvs[k]
			switch {
			case ok != present:
				s.inv.once(fmt.Sprintf("S8/%d", i), "S8", "read across ranges at %v served at revision %d: key %q present=%v, but at that revision it was present=%v (latest event at revision %d)",
					sc.at, sc.revision, k, ok, present, wantRev)
			case ok && (got != want || sc.modRevs[k] != wantRev):
				s.inv.once(fmt.Sprintf("S8/%d", i), "S8", "read across ranges at %v served at revision %d: key %q = %q (mod revision %d), but at that revision it was %q (mod revision %d)",
					sc.at, sc.revision, k, got, sc.modRevs[k], want, wantRev)
			}
		}
	}
}

// stateAt returns key k's value at revision rev from the applied events:
// whether it was present, its value and the revision of its latest event.
func (iv *invariants) stateAt(k string, rev int64) (value string, present bool, at int64) {
	evs := iv.keyEvents[k]
	var revs []int64
	for r := range evs {
		if r <= rev {
			revs = append(revs, r)
		}
	}
	if len(revs) == 0 {
		return "", false, 0
	}
	last := slices.Max(revs)
	ev := evs[last]
	if ev.Type == mvccpb.DELETE {
		return "", false, last
	}
	return string(ev.Kv.Value), true, last
}
