package check

import (
	"cmp"
	"slices"
	"testing"
)

func at(op Op, rev int64) Op {
	op.Output.Revision = rev
	return op
}

func kinds(vs []Violation) []ViolationKind {
	var ks []ViolationKind
	for _, v := range vs {
		ks = append(ks, v.Kind)
	}
	slices.Sort(ks)
	return slices.Compact(ks)
}

func wantKinds(t *testing.T, vs []Violation, want ...ViolationKind) {
	t.Helper()
	slices.Sort(want)
	if got := kinds(vs); !slices.Equal(got, want) {
		t.Errorf("violation kinds %q, want %q; violations:", got, want)
		for _, v := range vs {
			t.Errorf("  %v", v)
		}
	}
}

func TestRevisionsOfCorrectHistoryPass(t *testing.T) {
	h := []Op{
		at(put(0, "a", "1", 0, 10), 5),
		at(put(1, "b", "1", 1, 3), 4), // overlaps the first: any order
		at(getAbsent(2, "c", 4, 5), 4),
		at(getAbsent(2, "c", 6, 7), 4),              // reads share revisions
		at(cas(3, "a", "x", "2", false, 11, 12), 5), // so do failed compares
		at(del(3, "zz", false, 13, 14), 5),          // and deletes of nothing
		at(del(3, "a", true, 15, 16), 6),
		with(at(put(4, "a", "3", 17, 18), 1), Unknown), // unknown: revision unused
		with(at(put(4, "a", "3", 19, 20), 1), Fail),
		put(5, "b", "9", 21, 22), // revision not recorded
		at(get(5, "b", "9", 23, 24), 7),
	}
	wantKinds(t, CheckRevisions(h))
}

func TestRevisionReuseDetected(t *testing.T) {
	h := []Op{
		at(put(0, "a", "1", 0, 10), 5),
		at(put(1, "b", "1", 1, 9), 5),
	}
	wantKinds(t, CheckRevisions(h), RevisionReused)
	// A successful CAS and a delete that removed a key consume revisions too.
	h = []Op{
		at(cas(0, "a", "", "1", true, 0, 10), 5),
		at(del(1, "b", true, 1, 9), 5),
	}
	wantKinds(t, CheckRevisions(h), RevisionReused)
}

func TestRevisionGoingBackwardsDetected(t *testing.T) {
	// A read that starts after a write was acknowledged reports an older
	// store revision.
	h := []Op{
		at(put(0, "a", "1", 0, 5), 10),
		at(get(1, "b", "x", 6, 7), 8),
	}
	wantKinds(t, CheckRevisions(h), RevisionBackwards)
	// Overlapping, the same pair is fine.
	h[1].Call = 5
	wantKinds(t, CheckRevisions(h))

	// The store revision seen by reads goes backwards.
	h = []Op{
		at(getAbsent(0, "a", 0, 1), 10),
		at(getAbsent(1, "a", 2, 3), 9),
	}
	wantKinds(t, CheckRevisions(h), RevisionBackwards)
}

func TestModRevisionOrderDetected(t *testing.T) {
	h := []Op{
		at(put(0, "a", "1", 0, 1), 5),
		at(put(1, "a", "2", 2, 3), 4),
	}
	wantKinds(t, CheckRevisions(h), ModRevisionOrder, RevisionBackwards)
	// Equal mod revisions for two writes in real-time order: reuse and
	// order are both broken.
	h[1].Output.Revision = 5
	wantKinds(t, CheckRevisions(h), ModRevisionOrder, RevisionReused)
}

func TestRandomHistoriesRevisionMutations(t *testing.T) {
	for seed := range uint64(20) {
		g := generate(genConfig{seed: seed, clients: 5, keys: 3, ops: 400, maxGapNs: 20, maxLatencyNs: 40})
		wantKinds(t, CheckRevisions(g.ops))

		// Give the last acknowledged write its predecessor's revision.
		var ws []int
		for i, op := range g.ops {
			if op.isAckedWrite() {
				ws = append(ws, i)
			}
		}
		slices.SortFunc(ws, func(a, b int) int { return cmp.Compare(g.ops[a].Output.Revision, g.ops[b].Output.Revision) })
		bad := slices.Clone(g.ops)
		last, prev := ws[len(ws)-1], ws[len(ws)-2]
		bad[last].Output.Revision = bad[prev].Output.Revision
		if !slices.Contains(kinds(CheckRevisions(bad)), RevisionReused) {
			t.Fatalf("seed %d: reuse of revision %d not detected", seed, bad[prev].Output.Revision)
		}
	}
}
