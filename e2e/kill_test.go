package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestKillDataNodeDuringWrites kills one data node with SIGKILL while
// writers put unique keys, restarts it with the same flags and data dir,
// and checks that every acknowledged put is there with its revision: by
// linearizable gets through a node that was not killed, and by serializable
// gets from the restarted node once it has caught up. The puts and
// linearizable gets must pass check.CheckRevisions.
func TestKillDataNodeDuringWrites(t *testing.T) {
	needBinary(t)
	const (
		loadBeforeKill   = 1500 * time.Millisecond
		maxUnavailable   = 20 * time.Second // liveness bound, far above raft's election timeout
		probeTimeout     = 1 * time.Second
		loadWhileDown    = 1500 * time.Millisecond
		loadAfterRestart = 1500 * time.Millisecond
	)
	c := startCluster(t)
	// Kill the leader of the (first) data range: its in-flight batches are
	// the writes most at risk.
	v := c.dataLeader()
	victim, survivor := c.data[v], c.data[(v+1)%len(c.data)]
	victimEP, survivorEP := c.endpoints[v], c.endpoints[(v+1)%len(c.data)]

	l := newWriteLoad("kill1")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	wait := l.run(ctx, newClient(t, c.endpoints...))

	time.Sleep(loadBeforeKill)
	ackedBefore, _ := l.counts()
	victim.kill()
	killed, killedAt := time.Now(), l.now()
	t.Logf("killed %s after %d acknowledged puts", victim.name, ackedBefore)
	// The survivors hold 2 of 3 replicas of every range: writes must resume
	// once the ranges led by the victim have elected new leaders. A probe
	// with short timeouts through a survivor sees when; the writers may stay
	// blocked longer in puts sent before that.
	probe := newClient(t, survivorEP)
	for i := 0; ; i++ {
		pctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		_, err := probe.Put(pctx, fmt.Sprintf("probe/%d", i), "x")
		cancel()
		if err == nil {
			break
		}
		if time.Since(killed) > maxUnavailable {
			stop()
			wait()
			t.Fatalf("no put through %s succeeded in the %v after %s was killed, with 2 of 3 data nodes up (last error: %v)",
				survivor.name, maxUnavailable, victim.name, err)
		}
		time.Sleep(probeTimeout / 10)
	}
	t.Logf("first probe put through %s succeeded %v after the kill", survivor.name, time.Since(killed).Round(time.Millisecond))
	for l.ackedCalledAfter(killedAt) == 0 && time.Since(killed) < maxUnavailable {
		time.Sleep(50 * time.Millisecond)
	}
	if l.ackedCalledAfter(killedAt) == 0 {
		t.Errorf("no writer put started after the kill was acknowledged in %v, though a probe put succeeded", maxUnavailable)
	} else {
		t.Logf("first writer put started after the kill acknowledged %v after the kill", time.Since(killed).Round(time.Millisecond))
	}
	time.Sleep(loadWhileDown)
	ackedDown, errsDown := l.counts()
	t.Logf("while %s was down (%v): %d puts started after the kill acknowledged, %d errors so far",
		victim.name, time.Since(killed).Round(time.Millisecond), l.ackedCalledAfter(killedAt), errsDown)
	victim.restart()
	waitReady(t, victimEP, c.all()...)
	time.Sleep(loadAfterRestart)
	stop()
	wait()
	acked, errs := l.counts()
	t.Logf("load done: %d acknowledged puts, %d errors", acked, errs)
	if acked == ackedDown {
		t.Errorf("no put was acknowledged after %s restarted", victim.name)
	}

	l.verifyLinearizable(t, newClient(t, survivorEP), survivor.name)
	l.verifyLinearizable(t, newClient(t, victimEP), victim.name+" (restarted)")
	l.waitCaughtUp(t, newClient(t, victimEP), victim.name+" (restarted)")
	l.checkHistory(t)
}

// TestKillAllAndRestart kills every process (control and data) with SIGKILL
// during a write load, restarts them all with the same flags, and checks
// that every acknowledged put is there with its revision and that new
// writes get higher revisions than anything seen before.
func TestKillAllAndRestart(t *testing.T) {
	needBinary(t)
	const load = 2 * time.Second
	c := startCluster(t)

	l := newWriteLoad("killall")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	wait := l.run(ctx, newClient(t, c.endpoints...))
	time.Sleep(load)
	for _, p := range c.all() {
		p.kill()
	}
	stop()
	wait()
	acked, errs := l.counts()
	t.Logf("killed every process: %d acknowledged puts, %d errors", acked, errs)
	if acked == 0 {
		t.Fatal("no put was acknowledged before the kill")
	}

	for _, p := range c.all() {
		p.restart()
	}
	for _, ep := range c.endpoints {
		waitReady(t, ep, c.all()...)
	}
	all := newClient(t, c.endpoints...)
	l.verifyLinearizable(t, all, "all endpoints")
	for i, ep := range c.endpoints {
		l.waitCaughtUp(t, newClient(t, ep), c.data[i].name)
	}

	// New writes, through each node, get revisions above everything seen.
	seen := l.maxRevision()
	for i, ep := range c.endpoints {
		cli := newClient(t, ep)
		key := "killall/after/" + c.data[i].name
		call := l.now()
		p := put(t, context.Background(), cli, key, "new")
		if p.Header.Revision <= seen {
			t.Errorf("put %q after restart via %s got revision %d, not above %d (highest seen before)", key, c.data[i].name, p.Header.Revision, seen)
		}
		seen = max(seen, p.Header.Revision)
		l.hist.Record(checkPut(l.clientID(), key, "new", call, l.now(), p.Header.Revision))
	}
	l.checkHistory(t)
}
