package check

import (
	"cmp"
	"fmt"
	"slices"
)

// ViolationKind names the rule a Violation breaks.
type ViolationKind string

const (
	// RevisionReused: two acknowledged writes report the same revision
	// (S6; every write transaction gets a revision of its own).
	RevisionReused ViolationKind = "revision-reused"
	// ModRevisionOrder: a write to a key started after another write to the
	// same key was acknowledged, yet got a mod revision that is not higher
	// (S6).
	ModRevisionOrder ViolationKind = "mod-revision-order"
	// RevisionBackwards: an op started after another op returned, yet
	// reports a lower revision (S7: the store revision never goes
	// backwards, and a read after an acknowledged write sees at least its
	// revision).
	RevisionBackwards ViolationKind = "revision-backwards"
	// WatchReordered: a watcher received an event with a lower revision
	// than an event it had already received (S6).
	WatchReordered ViolationKind = "watch-reordered"
	// WatchDuplicate: a watcher received the same (revision, key) event
	// twice (S6).
	WatchDuplicate ViolationKind = "watch-duplicate"
	// WatchBeforeStart: a watcher received an event older than its start
	// revision.
	WatchBeforeStart ViolationKind = "watch-before-start"
	// WatchOutsideSpan: a watcher received an event for a key it does not
	// watch.
	WatchOutsideSpan ViolationKind = "watch-outside-span"
	// WatchProgressLie: a watcher received an event at or below the
	// revision of a progress notification it had already received, which
	// promised that every such event was delivered.
	WatchProgressLie ViolationKind = "watch-progress-lie"
	// WatchGap: an acknowledged write inside a watcher's span and
	// revision window was never delivered (S6).
	WatchGap ViolationKind = "watch-gap"
	// WatchMismatch: the event delivered for an acknowledged write has the
	// wrong type or value.
	WatchMismatch ViolationKind = "watch-mismatch"
	// WatchBehind: a watcher never reached the final revision the harness
	// drained every watcher to.
	WatchBehind ViolationKind = "watch-behind"
)

// Violation is one broken rule found by CheckRevisions or CheckWatches.
type Violation struct {
	// Kind is the rule broken.
	Kind ViolationKind
	// Detail names the operations or events involved.
	Detail string
}

// String formats the violation as "kind: detail".
func (v Violation) String() string {
	return string(v.Kind) + ": " + v.Detail
}

// CheckRevisions checks the revisions reported by the ops of h against S6
// and S7, exactly and without search (O(n log n)):
//
//   - acknowledged writes (Put, successful CAS, Delete that removed a key)
//     have distinct revisions;
//   - per key, a write that starts after another write was acknowledged has
//     a higher mod revision;
//   - an op that starts after another op returned reports a revision at
//     least as high: the store revision never goes backwards in real time,
//     and a read that starts after a write was acknowledged sees it.
//
// Only ops with Outcome Ok and a known revision (Output.Revision > 0) take
// part. Reads, failed CASes and deletes of nothing may share revisions.
// Violations come in a deterministic order. It panics if an op is malformed
// (see Op.Validate).
func CheckRevisions(h []Op) []Violation {
	mustValidate(h)
	var vs []Violation

	var known, writes []int // indices into h
	for i, op := range h {
		if op.Outcome != Ok || op.Output.Revision == 0 {
			continue
		}
		known = append(known, i)
		if op.isAckedWrite() {
			writes = append(writes, i)
		}
	}

	byRev := map[int64]int{}
	for _, i := range writes {
		rev := h[i].Output.Revision
		if j, ok := byRev[rev]; ok {
			vs = append(vs, Violation{RevisionReused, fmt.Sprintf(
				"op %d [%v] and op %d [%v] both acknowledged at revision %d", j, h[j], i, h[i], rev)})
			continue
		}
		byRev[rev] = i
	}

	byKey := map[string][]int{}
	var keys []string
	for _, i := range writes {
		k := h[i].Key
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], i)
	}
	slices.Sort(keys)
	for _, k := range keys {
		realTimeOrder(h, byKey[k], true, func(before, after int) {
			vs = append(vs, Violation{ModRevisionOrder, fmt.Sprintf(
				"key %q: op %d [%v] started after op %d [%v] was acknowledged, but its mod revision is not higher",
				k, after, h[after], before, h[before])})
		})
	}

	realTimeOrder(h, known, false, func(before, after int) {
		vs = append(vs, Violation{RevisionBackwards, fmt.Sprintf(
			"op %d [%v] started after op %d [%v] returned, but reports a lower revision",
			after, h[after], before, h[before])})
	})
	return vs
}

// realTimeOrder calls report(before, after) for every op `after` among idx
// whose revision is lower than (or, if strict, equal to) the highest revision
// of the ops that returned before it was called; before is the op with that
// highest revision. One sweep over calls, one over returns.
func realTimeOrder(h []Op, idx []int, strict bool, report func(before, after int)) {
	byCall := slices.Clone(idx)
	slices.SortStableFunc(byCall, func(a, b int) int { return cmp.Compare(h[a].Call, h[b].Call) })
	byReturn := slices.Clone(idx)
	slices.SortStableFunc(byReturn, func(a, b int) int { return cmp.Compare(h[a].Return, h[b].Return) })

	best := -1 // returned op with the highest revision so far
	next := 0
	for _, i := range byCall {
		for next < len(byReturn) && h[byReturn[next]].Return < h[i].Call {
			j := byReturn[next]
			if best < 0 || h[j].Output.Revision > h[best].Output.Revision {
				best = j
			}
			next++
		}
		if best < 0 {
			continue
		}
		rev, floor := h[i].Output.Revision, h[best].Output.Revision
		if rev < floor || (strict && rev == floor) {
			report(best, i)
		}
	}
}
