package check

import (
	"fmt"
	"strings"
)

// EventType is the type of a watch event.
type EventType int

const (
	// EventPut is etcd's PUT event: the key was created or updated.
	EventPut EventType = iota + 1
	// EventDelete is etcd's DELETE event: the key was removed.
	EventDelete
)

// String returns the type's name.
func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Delivery is one thing a watcher received: an event, or a progress
// notification promising that every event at or below Revision was delivered.
type Delivery struct {
	// Progress marks a progress notification; Key, Type and Value are
	// then unused.
	Progress bool
	// Revision is the event's mod revision, or the notification's header
	// revision.
	Revision int64
	// Key is the event's key.
	Key string
	// Type is the event's type.
	Type EventType
	// Value is the value a put event carries.
	Value string
}

// String describes the delivery in one line.
func (d Delivery) String() string {
	if d.Progress {
		return fmt.Sprintf("progress at rev %d", d.Revision)
	}
	if d.Type == EventDelete {
		return fmt.Sprintf("delete %q at rev %d", d.Key, d.Revision)
	}
	return fmt.Sprintf("%v %q = %q at rev %d", d.Type, d.Key, d.Value, d.Revision)
}

// WatchLog is what one watcher asked for and received, in delivery order. It
// is not safe for concurrent use: record each watcher from the goroutine that
// receives its responses.
type WatchLog struct {
	// Key is the watched key, or the watched prefix if Prefix is set.
	Key string
	// Prefix makes the watcher watch every key that starts with Key.
	Prefix bool
	// StartRevision is the first revision the watcher was promised: the
	// requested start revision, or the created response's header revision
	// + 1 for a watch that starts "now". At least 1.
	StartRevision int64
	// Deliveries are the events and progress notifications received.
	Deliveries []Delivery
}

// AddEvent records a received event.
func (w *WatchLog) AddEvent(rev int64, key string, typ EventType, value string) {
	w.Deliveries = append(w.Deliveries, Delivery{Revision: rev, Key: key, Type: typ, Value: value})
}

// AddProgress records a received progress notification.
func (w *WatchLog) AddProgress(rev int64) {
	w.Deliveries = append(w.Deliveries, Delivery{Progress: true, Revision: rev})
}

// Covers reports whether key is in the watcher's span.
func (w *WatchLog) Covers(key string) bool {
	if w.Prefix {
		return strings.HasPrefix(key, w.Key)
	}
	return key == w.Key
}

func (w *WatchLog) describe(n int) string {
	span := fmt.Sprintf("key %q", w.Key)
	if w.Prefix {
		span = fmt.Sprintf("prefix %q", w.Key)
	}
	return fmt.Sprintf("watcher %d (%s from rev %d)", n, span, w.StartRevision)
}

// validate reports why the log cannot be judged, or nil.
func (w *WatchLog) validate() error {
	if w.StartRevision < 1 {
		return fmt.Errorf("start revision %d, want >= 1", w.StartRevision)
	}
	for i, d := range w.Deliveries {
		if d.Revision < 1 {
			return fmt.Errorf("delivery %d (%v) has revision %d, want >= 1", i, d, d.Revision)
		}
		if !d.Progress && d.Type != EventPut && d.Type != EventDelete {
			return fmt.Errorf("delivery %d (%v) has invalid event type", i, d)
		}
	}
	return nil
}

type revKey struct {
	rev int64
	key string
}

// CheckWatches checks the watch logs against S6 and etcd's watch guarantees,
// using writes (typically the whole history; only acknowledged writes with a
// known revision are used, see CheckRevisions) as the truth about what was
// written. For each watcher:
//
//   - events arrive in non-decreasing revision order (events of one
//     transaction share a revision), and no (revision, key) arrives twice;
//   - no event is older than StartRevision or outside the watched span;
//   - no event arrives at or below the revision of an earlier progress
//     notification;
//   - every acknowledged write in the span, at a revision from
//     StartRevision up to the highest revision the watcher reached (its last
//     progress notification or event), was delivered, with matching type
//     and value.
//
// If finalRev > 0 it is the revision the harness drained every watcher to
// (for example with a progress request after the last write), and a watcher
// that did not reach it is reported as WatchBehind. Events that match no
// acknowledged write are accepted: they may come from writes whose outcome
// is unknown.
//
// Violations come in a deterministic order. It panics if a log or an op is
// malformed.
func CheckWatches(logs []WatchLog, writes []Op, finalRev int64) []Violation {
	mustValidate(writes)
	acked := map[revKey]int{} // index into writes
	var order []int
	for i, op := range writes {
		if op.isAckedWrite() && op.Output.Revision > 0 {
			// Reused revisions are CheckRevisions' business; keep the first.
			rk := revKey{op.Output.Revision, op.Key}
			if _, ok := acked[rk]; !ok {
				acked[rk] = i
				order = append(order, i)
			}
		}
	}

	var vs []Violation
	for n := range logs {
		w := &logs[n]
		if err := w.validate(); err != nil {
			panic(fmt.Sprintf("check: malformed watch log %d: %v", n, err))
		}
		who := w.describe(n)
		report := func(kind ViolationKind, format string, args ...any) {
			vs = append(vs, Violation{kind, who + ": " + fmt.Sprintf(format, args...)})
		}

		var lastEvent, progress, reached int64
		delivered := map[revKey]int{} // first delivery index
		for i, d := range w.Deliveries {
			reached = max(reached, d.Revision)
			if d.Progress {
				progress = max(progress, d.Revision)
				continue
			}
			if !w.Covers(d.Key) {
				report(WatchOutsideSpan, "delivery %d (%v) is outside the span", i, d)
			}
			if d.Revision < w.StartRevision {
				report(WatchBeforeStart, "delivery %d (%v) is older than the start revision", i, d)
			}
			if d.Revision < lastEvent {
				report(WatchReordered, "delivery %d (%v) arrived after an event at rev %d", i, d, lastEvent)
			}
			if d.Revision <= progress {
				report(WatchProgressLie, "delivery %d (%v) arrived after a progress notification at rev %d", i, d, progress)
			}
			rk := revKey{d.Revision, d.Key}
			if first, ok := delivered[rk]; ok {
				report(WatchDuplicate, "delivery %d (%v) repeats delivery %d (%v)", i, d, first, w.Deliveries[first])
			} else {
				delivered[rk] = i
			}
			lastEvent = max(lastEvent, d.Revision)
		}

		if finalRev > 0 && reached < finalRev {
			report(WatchBehind, "reached rev %d, never the final rev %d", reached, finalRev)
		}
		for _, wi := range order {
			op := writes[wi]
			rev := op.Output.Revision
			if rev < w.StartRevision || rev > reached || !w.Covers(op.Key) {
				continue
			}
			di, ok := delivered[revKey{rev, op.Key}]
			if !ok {
				report(WatchGap, "write %d [%v] was never delivered (watcher reached rev %d)", wi, op, reached)
				continue
			}
			d := w.Deliveries[di]
			want := Delivery{Revision: rev, Key: op.Key, Type: EventPut, Value: op.Value}
			if op.Kind == Delete {
				want.Type, want.Value = EventDelete, d.Value
			}
			if d != want {
				report(WatchMismatch, "write %d [%v] was delivered as delivery %d (%v)", wi, op, di, d)
			}
		}
	}
	return vs
}
