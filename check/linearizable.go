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
	// linearization, when Verdict is Illegal. It is empty if the second
	// search that finds them (the one that also records the visualization)
	// ran out of time.
	IllegalKeys []string

	// model and info feed WriteVisualization; set only for Illegal.
	model   porcupine.Model
	info    porcupine.LinearizationInfo
	hasInfo bool
}

// String summarises the result in one line.
func (r Result) String() string {
	if r.Verdict == Illegal && len(r.IllegalKeys) > 0 {
		return fmt.Sprintf("%v (keys %q)", r.Verdict, r.IllegalKeys)
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
// The search gives up after timeout (0 means no limit) with Verdict TimedOut.
// On Illegal the history is searched a second time, with the same limit, to
// record the data for WriteVisualization and IllegalKeys.
//
// It panics if an op is malformed (see Op.Validate).
func CheckLinearizable(h []Op, timeout time.Duration) Result {
	mustValidate(h)
	ops, keys := toPorcupine(h)
	model := kvModel()
	switch porcupine.CheckOperationsTimeout(model, ops, timeout) {
	case porcupine.Ok:
		return Result{Verdict: Linearizable}
	case porcupine.Unknown:
		return Result{Verdict: TimedOut}
	}

	start := time.Now()
	verdict, info := porcupine.CheckOperationsVerbose(model, ops, timeout)
	r := Result{Verdict: Illegal, model: model, info: info, hasInfo: true}
	// A partition cut short by the time limit also lacks a complete
	// linearization, so partitions can be blamed only if the limit was not
	// reached; porcupine's timer starts after start, so elapsed bounds it.
	if verdict != porcupine.Illegal || (timeout > 0 && time.Since(start) >= timeout) {
		return r
	}
	for p, partials := range info.PartialLinearizations() {
		complete := false
		for _, seq := range partials {
			if len(seq) == keys[p].ops {
				complete = true
				break
			}
		}
		if !complete {
			r.IllegalKeys = append(r.IllegalKeys, keys[p].key)
		}
	}
	return r
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
