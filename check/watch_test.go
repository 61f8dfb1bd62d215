package check

import (
	"slices"
	"testing"
)

// watchWrites: four writes under "p/", one outside, revisions 1..5.
var watchWrites = []Op{
	at(put(0, "p/a", "1", 0, 1), 1),
	at(put(0, "p/b", "2", 2, 3), 2),
	at(del(0, "p/a", true, 4, 5), 3),
	at(put(0, "p/a", "4", 6, 7), 4),
	at(put(0, "q", "5", 8, 9), 5),
	at(getAbsent(1, "p/c", 10, 11), 5), // reads are not events
	with(put(1, "p/z", "?", 12, 13), Unknown),
}

func ev(rev int64, key, value string) Delivery {
	return Delivery{Revision: rev, Key: key, Type: EventPut, Value: value}
}

func evDel(rev int64, key string) Delivery {
	return Delivery{Revision: rev, Key: key, Type: EventDelete}
}

func progress(rev int64) Delivery { return Delivery{Progress: true, Revision: rev} }

func prefixLog(start int64, ds ...Delivery) WatchLog {
	return WatchLog{Key: "p/", Prefix: true, StartRevision: start, Deliveries: ds}
}

func TestCorrectWatchesPass(t *testing.T) {
	logs := []WatchLog{
		prefixLog(1, ev(1, "p/a", "1"), ev(2, "p/b", "2"), evDel(3, "p/a"), ev(4, "p/a", "4"), progress(5)),
		prefixLog(3, evDel(3, "p/a"), progress(3), ev(4, "p/a", "4"), progress(5)),
		{Key: "p/a", StartRevision: 2, Deliveries: []Delivery{evDel(3, "p/a"), ev(4, "p/a", "4"), progress(5)}},
		{Key: "q", StartRevision: 1, Deliveries: []Delivery{ev(5, "q", "5")}},
		// An event from a write whose outcome the client never learned.
		prefixLog(5, ev(6, "p/z", "?"), progress(6)),
		// A transaction's events share a revision.
		prefixLog(7, ev(7, "p/x", "t"), ev(7, "p/y", "t"), progress(8)),
	}
	wantKinds(t, CheckWatches(logs, watchWrites, 5))

	// Without a final revision, a watcher is judged up to where it got.
	short := prefixLog(1, ev(1, "p/a", "1"), ev(2, "p/b", "2"))
	wantKinds(t, CheckWatches([]WatchLog{short}, watchWrites, 0))
}

func TestWatchBugsDetected(t *testing.T) {
	for _, tc := range []struct {
		name string
		log  WatchLog
		want []ViolationKind
	}{
		{"gap", prefixLog(1, ev(1, "p/a", "1"), evDel(3, "p/a"), ev(4, "p/a", "4"), progress(5)),
			[]ViolationKind{WatchGap}},
		{"gap at the tail hidden by a progress notification",
			prefixLog(1, ev(1, "p/a", "1"), ev(2, "p/b", "2"), evDel(3, "p/a"), progress(5)),
			[]ViolationKind{WatchGap}},
		{"duplicate", prefixLog(1, ev(1, "p/a", "1"), ev(2, "p/b", "2"), ev(2, "p/b", "2"), evDel(3, "p/a"), ev(4, "p/a", "4"), progress(5)),
			[]ViolationKind{WatchDuplicate}},
		{"reordered", prefixLog(1, ev(1, "p/a", "1"), evDel(3, "p/a"), ev(2, "p/b", "2"), ev(4, "p/a", "4"), progress(5)),
			[]ViolationKind{WatchReordered}},
		{"event before the start revision", prefixLog(2, ev(1, "p/a", "1"), ev(2, "p/b", "2"), evDel(3, "p/a"), ev(4, "p/a", "4"), progress(5)),
			[]ViolationKind{WatchBeforeStart}},
		{"progress notification lie", prefixLog(1, ev(1, "p/a", "1"), progress(3), ev(2, "p/b", "2"), evDel(3, "p/a"), ev(4, "p/a", "4"), progress(5)),
			[]ViolationKind{WatchProgressLie}},
		{"progress notification lie, in order", prefixLog(1, ev(1, "p/a", "1"), ev(2, "p/b", "2"), progress(3), evDel(3, "p/a"), ev(4, "p/a", "4"), progress(5)),
			[]ViolationKind{WatchProgressLie}},
		{"wrong value", prefixLog(1, ev(1, "p/a", "1"), ev(2, "p/b", "two"), evDel(3, "p/a"), ev(4, "p/a", "4"), progress(5)),
			[]ViolationKind{WatchMismatch}},
		{"wrong type", prefixLog(1, ev(1, "p/a", "1"), ev(2, "p/b", "2"), ev(3, "p/a", ""), ev(4, "p/a", "4"), progress(5)),
			[]ViolationKind{WatchMismatch}},
		{"outside the span", prefixLog(1, ev(1, "p/a", "1"), ev(2, "p/b", "2"), evDel(3, "p/a"), ev(4, "p/a", "4"), ev(5, "q", "5")),
			[]ViolationKind{WatchOutsideSpan}},
		{"behind the final revision", prefixLog(1, ev(1, "p/a", "1"), ev(2, "p/b", "2")),
			[]ViolationKind{WatchBehind}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantKinds(t, CheckWatches([]WatchLog{tc.log}, watchWrites, 5), tc.want...)
		})
	}
}

func TestWatchLogRecording(t *testing.T) {
	var w WatchLog
	w.Key, w.StartRevision = "p/a", 1
	w.AddEvent(1, "p/a", EventPut, "1")
	w.AddProgress(2)
	want := []Delivery{ev(1, "p/a", "1"), progress(2)}
	if !slices.Equal(w.Deliveries, want) {
		t.Errorf("Deliveries = %v, want %v", w.Deliveries, want)
	}
	if !w.Covers("p/a") || w.Covers("p/ab") {
		t.Error("a single-key watcher's span is that key only")
	}
	w.Prefix = true
	if !w.Covers("p/ab") || w.Covers("p/") {
		t.Error("a prefix watcher's span is every key with the prefix")
	}
}

func TestMalformedWatchLogPanics(t *testing.T) {
	for _, w := range []WatchLog{
		prefixLog(0),
		prefixLog(1, Delivery{Revision: 1, Key: "p/a"}),
		prefixLog(1, progress(0)),
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("CheckWatches accepted %+v", w)
				}
			}()
			CheckWatches([]WatchLog{w}, nil, 0)
		}()
	}
}

func TestRandomWatches(t *testing.T) {
	for seed := range uint64(20) {
		g := generate(genConfig{
			seed: seed, clients: 5, keys: 12, ops: 500,
			unknownPercent: 5, failPercent: 5, maxGapNs: 20, maxLatencyNs: 40,
		})
		start := 1 + int64(seed)%(g.finalRev/2)
		logs := []WatchLog{
			g.watchLog("k", true, 1),
			g.watchLog("k0", true, start),
			g.watchLog("k1", true, start),
			g.watchLog("k03", false, 1),
		}
		wantKinds(t, CheckWatches(logs, g.ops, g.finalRev))

		// Drop the event of one acknowledged write from the full watcher.
		acked := map[revKey]bool{}
		for _, op := range g.ops {
			if op.isAckedWrite() {
				acked[revKey{op.Output.Revision, op.Key}] = true
			}
		}
		full := logs[0].Deliveries
		var i int
		for i = int(seed) % len(full); ; i = (i + 1) % len(full) {
			if d := full[i]; !d.Progress && acked[revKey{d.Revision, d.Key}] {
				break
			}
		}
		gap := WatchLog{Key: "k", Prefix: true, StartRevision: 1, Deliveries: slices.Delete(slices.Clone(full), i, i+1)}
		wantKinds(t, CheckWatches([]WatchLog{gap}, g.ops, g.finalRev), WatchGap)

		// Deliver that event twice, then swap it with its successor.
		dup := slices.Insert(slices.Clone(full), i, full[i])
		wantKinds(t, CheckWatches([]WatchLog{{Key: "k", Prefix: true, StartRevision: 1, Deliveries: dup}}, g.ops, g.finalRev), WatchDuplicate)
		if i+1 < len(full)-1 { // the successor is an event, not the final progress
			swapped := slices.Clone(full)
			swapped[i], swapped[i+1] = swapped[i+1], swapped[i]
			wantKinds(t, CheckWatches([]WatchLog{{Key: "k", Prefix: true, StartRevision: 1, Deliveries: swapped}}, g.ops, g.finalRev), WatchReordered)
		}
	}
}
