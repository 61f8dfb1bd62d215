package e2e

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenfold/tenfold/check"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Bounds of a write load.
const (
	loadWriters        = 8
	maxPutsPerWriter   = 5000
	putTimeout         = 3 * time.Second
	writerErrorBackoff = 50 * time.Millisecond
	verifyWorkers      = 4
	catchUpTimeout     = 30 * time.Second
	maxViolationsShown = 20
)

// ackedPut is a put the cluster acknowledged.
type ackedPut struct {
	value    string
	revision int64 // response header revision: the key's mod revision
}

// writeLoad records a history of puts of unique keys under prefix, and the
// puts that were acknowledged. Every op's times are nanoseconds since t0.
type writeLoad struct {
	prefix string
	t0     time.Time
	hist   check.History
	nextID atomic.Int64 // check.Op client IDs

	mu    sync.Mutex
	acked map[string]ackedPut
	errs  int
}

func newWriteLoad(prefix string) *writeLoad {
	return &writeLoad{prefix: prefix, t0: time.Now(), acked: map[string]ackedPut{}}
}

func (l *writeLoad) now() int64 { return time.Since(l.t0).Nanoseconds() }

// clientID returns a fresh history client ID; a writer takes a new one after
// each op with an unknown outcome, as check.Op asks.
func (l *writeLoad) clientID() int { return int(l.nextID.Add(1)) }

// counts returns the number of acknowledged puts and of failed ones so far.
func (l *writeLoad) counts() (acked, errs int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked), l.errs
}

// run starts loadWriters goroutines putting unique keys through cli until
// ctx is done (or maxPutsPerWriter each). The returned func waits for them.
// A put that returns an error is recorded as Unknown: it may or may not
// have happened, and nothing is asserted about it.
func (l *writeLoad) run(ctx context.Context, cli *clientv3.Client) (wait func()) {
	var wg sync.WaitGroup
	for w := range loadWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := l.clientID()
			for i := 0; i < maxPutsPerWriter && ctx.Err() == nil; i++ {
				key := fmt.Sprintf("%s/w%02d/%06d", l.prefix, w, i)
				val := fmt.Sprintf("v-%d-%d", w, i)
				// Not ctx: stopping the load lets in-flight puts finish.
				pctx, cancel := context.WithTimeout(context.Background(), putTimeout)
				call := l.now()
				resp, err := cli.Put(pctx, key, val)
				ret := l.now()
				cancel()
				op := check.Op{ClientID: id, Kind: check.Put, Key: key, Value: val, Call: call, Return: ret}
				if err != nil {
					op.Outcome = check.Unknown
					l.hist.Record(op)
					l.mu.Lock()
					l.errs++
					l.mu.Unlock()
					id = l.clientID()
					select {
					case <-ctx.Done():
					case <-time.After(writerErrorBackoff):
					}
					continue
				}
				op.Outcome = check.Ok
				op.Output.Revision = resp.Header.Revision
				l.hist.Record(op)
				l.mu.Lock()
				l.acked[key] = ackedPut{value: val, revision: resp.Header.Revision}
				l.mu.Unlock()
			}
		}()
	}
	return wg.Wait
}

// ackedCalledAfter counts the acknowledged puts called after t (as l.now).
func (l *writeLoad) ackedCalledAfter(t int64) int {
	n := 0
	for _, op := range l.hist.Ops() {
		if op.Kind == check.Put && op.Outcome == check.Ok && op.Call > t {
			n++
		}
	}
	return n
}

// ackedKeys returns the acknowledged keys in order.
func (l *writeLoad) ackedKeys() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]string, 0, len(l.acked))
	for k := range l.acked {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (l *writeLoad) ackedPut(key string) ackedPut {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked[key]
}

// maxRevision is the highest revision reported by any op of the history.
func (l *writeLoad) maxRevision() int64 {
	var m int64
	for _, op := range l.hist.Ops() {
		if op.Outcome == check.Ok {
			m = max(m, op.Output.Revision)
		}
	}
	return m
}

// verifyLinearizable reads every acknowledged key with a linearizable Get
// through cli, records the reads in the history, and reports every key that
// is missing or has another value or mod revision than its put's.
func (l *writeLoad) verifyLinearizable(t *testing.T, cli *clientv3.Client, via string) {
	t.Helper()
	keys := l.ackedKeys()
	var mu sync.Mutex
	var problems []string
	var next atomic.Int64
	var wg sync.WaitGroup
	for range verifyWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := l.clientID()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(keys) {
					return
				}
				key, want := keys[i], l.ackedPut(keys[i])
				ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				call := l.now()
				g, err := cli.Get(ctx, key)
				ret := l.now()
				cancel()
				op := check.Op{ClientID: id, Kind: check.Get, Key: key, Call: call, Return: ret}
				var problem string
				switch {
				case err != nil:
					op.Outcome = check.Unknown
					id = l.clientID()
					problem = fmt.Sprintf("get %q via %s: %v", key, via, err)
				default:
					op.Outcome = check.Ok
					op.Output.Revision = g.Header.Revision
					if len(g.Kvs) == 1 {
						op.Output.Found, op.Output.Value = true, string(g.Kvs[0].Value)
					}
					problem = kvProblem(key, want, g)
				}
				l.hist.Record(op)
				if problem != "" {
					mu.Lock()
					problems = append(problems, problem)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	reportProblems(t, fmt.Sprintf("linearizable gets via %s", via), len(keys), problems)
}

// kvProblem describes how the response g to a Get of key differs from the
// acknowledged put want, or returns "".
func kvProblem(key string, want ackedPut, g *clientv3.GetResponse) string {
	switch {
	case len(g.Kvs) == 0:
		return fmt.Sprintf("acknowledged put %q (rev %d) lost: key absent at header revision %d", key, want.revision, g.Header.Revision)
	case string(g.Kvs[0].Value) != want.value || g.Kvs[0].ModRevision != want.revision:
		return fmt.Sprintf("key %q = %q at mod revision %d, want %q at mod revision %d (acknowledged put)",
			key, g.Kvs[0].Value, g.Kvs[0].ModRevision, want.value, want.revision)
	}
	return ""
}

func reportProblems(t *testing.T, what string, n int, problems []string) {
	t.Helper()
	if len(problems) == 0 {
		t.Logf("%s: all %d acknowledged writes present with their revisions", what, n)
		return
	}
	sort.Strings(problems)
	t.Errorf("%s: %d of %d acknowledged writes wrong; first ones:", what, len(problems), n)
	for _, p := range problems[:min(len(problems), maxViolationsShown)] {
		t.Errorf("  %s", p)
	}
}

// waitCaughtUp polls serializable reads of the load's prefix through cli
// (one node's endpoint) until that node's replicas show every acknowledged
// write, then checks each key with a serializable Get. Serializable reads
// may lag, so they are not part of the history checked for real-time order.
func (l *writeLoad) waitCaughtUp(t *testing.T, cli *clientv3.Client, via string) {
	t.Helper()
	keys := l.ackedKeys()
	start := time.Now()
	var missing int
	var last string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		g, err := cli.Get(ctx, l.prefix+"/", clientv3.WithPrefix(), clientv3.WithSerializable())
		cancel()
		if err != nil {
			missing, last = len(keys), err.Error()
		} else {
			have := map[string]int64{}
			for _, kv := range g.Kvs {
				have[string(kv.Key)] = kv.ModRevision
			}
			missing = 0
			for _, k := range keys {
				want := l.ackedPut(k)
				rev, ok := have[k]
				if !ok {
					missing++
					last = fmt.Sprintf("%q absent at header revision %d", k, g.Header.Revision)
					continue
				}
				if rev != want.revision {
					t.Fatalf("serializable read via %s: key %q has mod revision %d, want %d (acknowledged put)", via, k, rev, want.revision)
				}
			}
		}
		if missing == 0 {
			break
		}
		if time.Since(start) > catchUpTimeout {
			t.Fatalf("%s did not catch up in %v: %d of %d acknowledged writes not visible to serializable reads (e.g. %s)",
				via, catchUpTimeout, missing, len(keys), last)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%s caught up after %v", via, time.Since(start).Round(time.Millisecond))

	var problems []string
	for _, k := range keys {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		g, err := cli.Get(ctx, k, clientv3.WithSerializable())
		cancel()
		if err != nil {
			problems = append(problems, fmt.Sprintf("serializable get %q: %v", k, err))
			continue
		}
		if p := kvProblem(k, l.ackedPut(k), g); p != "" {
			problems = append(problems, p)
		}
	}
	reportProblems(t, fmt.Sprintf("serializable gets via %s", via), len(keys), problems)
}

// checkHistory runs check.CheckRevisions on the recorded puts and
// linearizable gets.
func (l *writeLoad) checkHistory(t *testing.T) {
	t.Helper()
	ops := l.hist.Ops()
	vs := check.CheckRevisions(ops)
	if len(vs) == 0 {
		t.Logf("check.CheckRevisions: %d ops, no violations", len(ops))
		return
	}
	t.Errorf("check.CheckRevisions: %d violations in %d ops; first ones:", len(vs), len(ops))
	for _, v := range vs[:min(len(vs), maxViolationsShown)] {
		t.Errorf("  %v", v)
	}
}

// checkPut is an acknowledged put as a history op.
func checkPut(clientID int, key, val string, call, ret, rev int64) check.Op {
	return check.Op{ClientID: clientID, Kind: check.Put, Key: key, Value: val, Call: call, Return: ret,
		Outcome: check.Ok, Output: check.Output{Revision: rev}}
}
