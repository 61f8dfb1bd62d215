package check

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
)

// Verdict is the answer of a linearizability check.
type Verdict int

const (
	// Linearizable: some total order of the operations agrees with real
	// time and with a sequential key-value store (porcupine's Ok).
	Linearizable Verdict = iota + 1
	// Illegal: no such order exists; invariant S1 is broken.
	Illegal
	// TimedOut: the search ran out of time before deciding (porcupine's
	// Unknown). No violation was found, but none was ruled out either.
	TimedOut
)

// String returns the verdict's name.
func (v Verdict) String() string {
	switch v {
	case Linearizable:
		return "linearizable"
	case Illegal:
		return "illegal"
	case TimedOut:
		return "timed out"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Result is the outcome of CheckLinearizable.
type Result struct {
	// Verdict is the answer.
	Verdict Verdict
	// IllegalKeys lists, sorted, the keys whose operations have no
	// linearization, when Verdict is Illegal.
	IllegalKeys []string

	// TimedOutWindow names the window whose search ran out of time, when
	// Verdict is TimedOut.
	TimedOutWindow string
	// Windows is how many windows were searched (see CheckLinearizable),
	// and LargestWindow the most operations in one.
	Windows, LargestWindow int

	// model and info feed WriteVisualization; set only for Illegal: the
	// first illegal window's.
	model   porcupine.Model
	info    porcupine.LinearizationInfo
	hasInfo bool
}

// String summarises the result in one line.
func (r Result) String() string {
	if r.Verdict == Illegal && len(r.IllegalKeys) > 0 {
		return fmt.Sprintf("%v (keys %q)", r.Verdict, r.IllegalKeys)
	}
	if r.Verdict == TimedOut {
		return fmt.Sprintf("%v (%s)", r.Verdict, r.TimedOutWindow)
	}
	return r.Verdict.String()
}

// WriteVisualization writes porcupine's interactive HTML view of the history
// and its longest partial linearizations to path. Only Illegal results carry
// one; for any other verdict it returns an error and writes nothing.
func (r Result) WriteVisualization(path string) error {
	if !r.hasInfo {
		return fmt.Errorf("check: no visualization for a %v result: only illegal results record one", r.Verdict)
	}
	if err := porcupine.VisualizePath(r.model, r.info, path); err != nil {
		return fmt.Errorf("check: writing visualization to %s: %w", path, err)
	}
	return nil
}

// CheckLinearizable checks invariant S1: the operations of h, partitioned per
// key, are linearizable with respect to a sequential key-value store with
// etcd's semantics for Put, Get, Delete and CAS.
//
// Ops with Outcome Fail are left out: they did not happen. An Op with Outcome
// Unknown may take effect at any point after its Call, however late, or not
// at all; it is given a return time after every other event and an output
// that the model accepts whichever way it went, so "not at all" is the case
// where it is linearized last. Unknown Gets are left out since they change
// nothing.
//
// Each key's history is cut further into windows at quiescent points, times
// at which no operation on the key is pending (every op called before has
// returned; an Unknown op is pending to the end). Every op of a window is
// linearized after every op of the windows before it, so the key's history is
// linearizable if and only if each window is, starting from some state the
// windows before it can end in. The check carries that set of possible states
// from window to window (exactly: a state is possible if some complete
// linearization of the window ends in it), so porcupine only ever searches
// one window. This is what keeps long histories within budget.
//
// All the searches together give up after timeout (0 means no limit) with
// Verdict TimedOut, which the caller must treat as a failure: nothing was
// proven. On Illegal the failing window is searched a second time, with the
// same limit, to record the data for WriteVisualization.
//
// It panics if an op is malformed (see Op.Validate).
func CheckLinearizable(h []Op, timeout time.Duration) Result {
	mustValidate(h)
	ops, keys := toPorcupine(h)
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	byKey := partitionByKey(ops)
	r := Result{Verdict: Linearizable}
	for p, kops := range byKey {
		kr := checkKey(keys[p].key, kops, deadline)
		switch kr.Verdict {
		case TimedOut:
			if r.Verdict != Illegal {
				r.Verdict, r.TimedOutWindow = TimedOut, kr.TimedOutWindow
			}
		case Illegal:
			if r.Verdict != Illegal {
				r = Result{Verdict: Illegal, model: kr.model, info: kr.info, hasInfo: kr.hasInfo}
			}
			r.IllegalKeys = append(r.IllegalKeys, keys[p].key)
		}
		r.Windows += kr.Windows
		r.LargestWindow = max(r.LargestWindow, kr.LargestWindow)
	}
	return r
}

// checkKey checks one key's operations window by window.
func checkKey(key string, ops []porcupine.Operation, deadline time.Time) Result {
	r := Result{Verdict: Linearizable}
	states := []kvState{{}} // the key starts absent
	windows := quiescentWindows(ops)
	for i, w := range windows {
		r.Windows++
		r.LargestWindow = max(r.LargestWindow, len(w))
		model := windowModel(states)
		switch porcupine.CheckOperationsTimeout(model, w, remaining(deadline)) {
		case porcupine.Unknown:
			r.Verdict = TimedOut
			r.TimedOutWindow = fmt.Sprintf("key %q, %d ops called from %d to %d", key, len(w), w[0].Call, w[len(w)-1].Call)
			return r
		case porcupine.Illegal:
			r.Verdict = Illegal
			_, r.info = porcupine.CheckOperationsVerbose(model, w, remaining(deadline))
			r.model, r.hasInfo = model, true
			return r
		}
		if i == len(windows)-1 {
			break // nothing follows: its end states do not matter
		}
		next, ok := endStates(w, states, deadline)
		if !ok {
			r.Verdict = TimedOut
			r.TimedOutWindow = fmt.Sprintf("key %q, end states of %d ops called from %d to %d", key, len(w), w[0].Call, w[len(w)-1].Call)
			return r
		}
		states = next
	}
	return r
}

// remaining is the time left before deadline, for porcupine (0 means no
// limit, so an expired deadline gives the smallest positive limit).
func remaining(deadline time.Time) time.Duration {
	if deadline.IsZero() {
		return 0
	}
	return max(time.Until(deadline), time.Nanosecond)
}

// quiescentWindows cuts one key's operations at every point where none is
// pending: an op starts a new window if every op called before it returned
// before its call (strictly: porcupine orders a call before a return at the
// same time, making them concurrent).
func quiescentWindows(ops []porcupine.Operation) [][]porcupine.Operation {
	sorted := slices.Clone(ops)
	slices.SortStableFunc(sorted, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
	var windows [][]porcupine.Operation
	var lastReturn int64
	for i, op := range sorted {
		if i == 0 || lastReturn < op.Call {
			windows = append(windows, nil)
		}
		windows[len(windows)-1] = append(windows[len(windows)-1], op)
		lastReturn = max(lastReturn, op.Return)
	}
	return windows
}

// endStates returns the states a window can end in, from any of the states
// it can start in: a candidate (absent, a start state, or a value written in
// the window) is possible if the window followed by a read returning it is
// linearizable. ok is false if the deadline passed.
func endStates(w []porcupine.Operation, start []kvState, deadline time.Time) ([]kvState, bool) {
	candidates := append([]kvState{{}}, start...)
	var end int64
	lanes := 0
	for _, op := range w {
		in := op.Input.(kvInput)
		if in.kind == Put || in.kind == CAS {
			candidates = append(candidates, kvState{present: true, value: in.value})
		}
		end = max(end, op.Return, op.Call)
		lanes = max(lanes, op.ClientId+1)
	}
	slices.SortFunc(candidates, compareStates)
	candidates = slices.Compact(candidates)
	model := windowModel(start)
	key := w[0].Input.(kvInput).key
	var out []kvState
	for _, c := range candidates {
		probe := porcupine.Operation{ClientId: lanes, Call: end + 1, Return: end + 2,
			Input:  kvInput{kind: Get, key: key, index: -1, client: -1},
			Output: kvOutput{found: c.present, value: c.value}}
		switch porcupine.CheckOperationsTimeout(model, append(slices.Clone(w), probe), remaining(deadline)) {
		case porcupine.Ok:
			out = append(out, c)
		case porcupine.Unknown:
			return nil, false
		}
	}
	return out, true
}

func compareStates(a, b kvState) int {
	if a.present != b.present {
		if !a.present {
			return -1
		}
		return 1
	}
	return cmp.Compare(a.value, b.value)
}

// windowModel is kvModel for one key's window that may start in any of
// states: porcupine's nondeterministic model, whose state is the set of
// register states still possible.
func windowModel(states []kvState) porcupine.Model {
	base := kvModel()
	init := make([]any, len(states))
	for i, s := range states {
		init[i] = s
	}
	nm := porcupine.NondeterministicModel{
		Init: func() []any { return init },
		Step: func(state, input, output any) []any {
			if ok, next := kvStep(state, input, output); ok {
				return []any{next}
			}
			return nil
		},
		Hash:                      base.Hash,
		DescribeOperation:         base.DescribeOperation,
		DescribeState:             base.DescribeState,
		DescribeOperationMetadata: base.DescribeOperationMetadata,
	}
	return nm.ToModel()
}

// kvInput is a porcupine operation input: the request.
type kvInput struct {
	kind   OpKind
	key    string
	value  string
	expect string
	index  int // position in the recorded history, for the visualization
	client int // recorded ClientID; porcupine's own is a dense lane number
}

// kvOutput is a porcupine operation output: the response, or unknown.
type kvOutput struct {
	unknown   bool
	found     bool
	value     string
	succeeded bool
}

// kvState is the model's per-key state; the model is partitioned per key.
type kvState struct {
	present bool
	value   string
}

// keyPartition names one porcupine partition.
type keyPartition struct {
	key string
	ops int
}

// toPorcupine converts the history to porcupine operations and lists the
// partitions kvModel's Partition will produce, in the same (sorted) order.
func toPorcupine(h []Op) ([]porcupine.Operation, []keyPartition) {
	// Unknown operations return after everything else happened.
	var last int64
	for _, op := range h {
		if op.Outcome == Fail {
			continue
		}
		last = max(last, op.Call)
		if op.Outcome == Ok {
			last = max(last, op.Return)
		}
	}
	never := last + 1

	// porcupine draws one lane per ClientId, so they must be small.
	var clients []int
	for _, op := range h {
		clients = append(clients, op.ClientID)
	}
	slices.Sort(clients)
	clients = slices.Compact(clients)

	var ops []porcupine.Operation
	perKey := map[string]int{}
	for i, op := range h {
		if op.Outcome == Fail || (op.Outcome == Unknown && op.Kind == Get) {
			continue
		}
		in := kvInput{kind: op.Kind, key: op.Key, value: op.Value, expect: op.Expect, index: i, client: op.ClientID}
		out := kvOutput{unknown: true}
		ret := never
		if op.Outcome == Ok {
			out = kvOutput{found: op.Output.Found, value: op.Output.Value, succeeded: op.Output.Succeeded}
			ret = op.Return
		}
		lane, _ := slices.BinarySearch(clients, op.ClientID)
		ops = append(ops, porcupine.Operation{ClientId: lane, Input: in, Call: op.Call, Output: out, Return: ret, Metadata: in})
		perKey[op.Key]++
	}
	keys := make([]keyPartition, 0, len(perKey))
	for k, n := range perKey {
		keys = append(keys, keyPartition{key: k, ops: n})
	}
	slices.SortFunc(keys, func(a, b keyPartition) int { return cmp.Compare(a.key, b.key) })
	return ops, keys
}

// kvModel is a single-key register with etcd semantics, partitioned per key.
func kvModel() porcupine.Model {
	return porcupine.Model{
		Partition: partitionByKey,
		Init:      func() any { return kvState{} },
		Step:      kvStep,
		Hash: func(state any) uint64 {
			s := state.(kvState)
			f := fnv.New64a()
			if s.present {
				f.Write([]byte{1})
				f.Write([]byte(s.value))
			}
			return f.Sum64()
		},
		DescribeOperation: describeKVOperation,
		DescribeState: func(state any) string {
			s := state.(kvState)
			if !s.present {
				return "absent"
			}
			return fmt.Sprintf("%q", s.value)
		},
		DescribeOperationMetadata: func(meta any) string {
			in := meta.(kvInput)
			return fmt.Sprintf("op %d, client %d", in.index, in.client)
		},
	}
}

// partitionByKey splits the history per key, in sorted key order so that
// partition numbers match toPorcupine's list.
func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	for _, op := range history {
		k := op.Input.(kvInput).key
		byKey[k] = append(byKey[k], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, byKey[k])
	}
	return parts
}

// kvStep applies one operation to one key. An unknown output is accepted
// whatever the state; the operation's effect is applied as if it happened
// at this point, which is the only point at which it can affect anything.
func kvStep(state, input, output any) (bool, any) {
	s := state.(kvState)
	in := input.(kvInput)
	out := output.(kvOutput)
	switch in.kind {
	case Put:
		return true, kvState{present: true, value: in.value}
	case Delete:
		// Only a reported removal is checked; see Output.Found.
		if !out.unknown && out.found && !s.present {
			return false, s
		}
		return true, kvState{}
	case Get:
		if out.found != s.present || (s.present && out.value != s.value) {
			return false, s
		}
		return true, s
	case CAS:
		holds := !s.present
		if in.expect != "" {
			holds = s.present && s.value == in.expect
		}
		if !out.unknown && out.succeeded != holds {
			return false, s
		}
		if holds {
			return true, kvState{present: true, value: in.value}
		}
		return true, s
	}
	panic(fmt.Sprintf("check: kvStep: invalid kind %v", in.kind))
}

func describeKVOperation(input, output any) string {
	in := input.(kvInput)
	out := output.(kvOutput)
	var call, ret string
	switch in.kind {
	case Put:
		call = fmt.Sprintf("put(%q, %q)", in.key, in.value)
	case Get:
		call = fmt.Sprintf("get(%q)", in.key)
		if out.found {
			ret = fmt.Sprintf("%q", out.value)
		} else {
			ret = "absent"
		}
	case Delete:
		call = fmt.Sprintf("delete(%q)", in.key)
		if out.found {
			ret = "deleted"
		}
	case CAS:
		call = fmt.Sprintf("cas(%q, %s -> %q)", in.key, describeExpect(in.expect), in.value)
		if out.succeeded {
			ret = "ok"
		} else {
			ret = "failed"
		}
	}
	switch {
	case out.unknown:
		return call + " -> unknown"
	case ret == "":
		return call
	}
	return call + " -> " + ret
}
