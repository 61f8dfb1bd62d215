package check

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
)

// genConfig shapes a generated history.
type genConfig struct {
	seed           uint64
	clients        int
	keys           int
	ops            int // total, split evenly over clients
	unknownPercent int // ops whose outcome is Unknown (half of them take effect)
	failPercent    int // ops whose outcome is Fail (none take effect)
	maxGapNs       int64
	maxLatencyNs   int64 // call to linearization point, and point to return
}

// genHistory is a history produced by a sequential in-memory store, plus
// what really happened, for building watch logs and mutations.
type genHistory struct {
	ops      []Op
	lin      []int64 // linearization point of each op
	events   []Delivery
	finalRev int64
}

// generate runs a sequential key-value store with etcd revisions and records
// each client's ops with random call and return times around the true
// linearization point, so the history is linearizable and its revisions are
// consistent by construction.
func generate(cfg genConfig) genHistory {
	rng := rand.New(rand.NewPCG(cfg.seed, 0x7e4f01d))
	var g genHistory
	for c := range cfg.clients {
		t := rng.Int64N(cfg.maxGapNs + 1)
		for range cfg.ops / cfg.clients {
			call := t
			lin := call + 1 + rng.Int64N(cfg.maxLatencyNs)
			ret := lin + rng.Int64N(cfg.maxLatencyNs)
			t = ret + 1 + rng.Int64N(cfg.maxGapNs+1)
			g.ops = append(g.ops, Op{ClientID: c, Call: call, Return: ret})
			g.lin = append(g.lin, lin)
		}
	}
	order := make([]int, len(g.ops))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(g.lin[a], g.lin[b]) })

	store := map[string]string{}
	var rev int64
	for n, i := range order {
		op := &g.ops[i]
		op.Key = fmt.Sprintf("k%02d", rng.IntN(cfg.keys))
		cur, present := store[op.Key]
		switch r := rng.IntN(100); {
		case r < 35:
			op.Kind = Put
		case r < 70:
			op.Kind = Get
		case r < 80:
			op.Kind = Delete
		default:
			op.Kind = CAS
			if rng.IntN(100) < 60 {
				op.Expect = cur // "" if absent, which is what CAS means by ""
			} else if rng.IntN(2) == 0 {
				op.Expect = fmt.Sprintf("v%d", rng.IntN(n+1))
			}
		}
		if op.Kind == Put || op.Kind == CAS {
			op.Value = fmt.Sprintf("v%d", n) // unique, so a read names its write
		}

		op.Outcome = Ok
		effect := true
		switch r := rng.IntN(100); {
		case r < cfg.failPercent:
			op.Outcome, effect = Fail, false
		case r < cfg.failPercent+cfg.unknownPercent:
			op.Outcome, effect = Unknown, rng.IntN(2) == 0
		}
		if !effect {
			continue
		}
		switch op.Kind {
		case Put:
			store[op.Key] = op.Value
			rev++
			g.events = append(g.events, Delivery{Revision: rev, Key: op.Key, Type: EventPut, Value: op.Value})
		case Get:
			op.Output.Found, op.Output.Value = present, cur
		case Delete:
			if present {
				delete(store, op.Key)
				rev++
				op.Output.Found = true
				g.events = append(g.events, Delivery{Revision: rev, Key: op.Key, Type: EventDelete})
			}
		case CAS:
			if (op.Expect == "" && !present) || (op.Expect != "" && present && cur == op.Expect) {
				store[op.Key] = op.Value
				rev++
				op.Output.Succeeded = true
				g.events = append(g.events, Delivery{Revision: rev, Key: op.Key, Type: EventPut, Value: op.Value})
			}
		}
		op.Output.Revision = rev
		if op.Outcome != Ok {
			op.Output = Output{}
		}
	}
	g.finalRev = rev
	return g
}

// watchLog is what a correct server delivers to a watcher of key (or prefix)
// from start, ending with a progress notification at the final revision.
func (g genHistory) watchLog(key string, prefix bool, start int64) WatchLog {
	w := WatchLog{Key: key, Prefix: prefix, StartRevision: start}
	for _, e := range g.events {
		if e.Revision >= start && w.Covers(e.Key) {
			w.Deliveries = append(w.Deliveries, e)
		}
	}
	w.AddProgress(g.finalRev)
	return w
}
