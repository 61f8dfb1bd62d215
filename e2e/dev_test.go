package e2e

import (
	"net"
	"path/filepath"
	"strconv"
	"testing"
)

// devCluster is a `tenfold dev` process: 1 control and 3 data nodes.
type devCluster struct {
	proc      *proc
	endpoints []string
}

// startDev runs `tenfold dev` on free ports with data in a new temp dir
// and extra flags, and waits until every endpoint serves a Get.
func startDev(t *testing.T, extra ...string) *devCluster {
	t.Helper()
	dir := t.TempDir()                 // before the process: removed after it is killed
	client := freeBase(t, 0, 100, 200) // dev's client ports
	peer := freeBase(t, 0, 1, 2, 3)    // dev's peer ports
	args := append([]string{"dev", "--data-dir=" + filepath.Join(dir, "data"),
		"--client-port=" + strconv.Itoa(client), "--peer-port=" + strconv.Itoa(peer)}, extra...)
	d := &devCluster{proc: startProc(t, dir, "dev", args...)}
	for _, off := range []int{0, 100, 200} {
		d.endpoints = append(d.endpoints, addr(client+off))
	}
	for _, ep := range d.endpoints {
		waitReady(t, ep, d.proc)
	}
	return d
}

// freeBase returns a port p such that p+off is free for every offset,
// trying bases the kernel hands out for port 0.
func freeBase(t *testing.T, offsets ...int) int {
	t.Helper()
	for range maxPortRetries {
		base := freePorts(t, 1)[0]
		if base+offsets[len(offsets)-1] > 65535 {
			continue
		}
		ok := true
		var ls []net.Listener
		for _, off := range offsets {
			l, err := net.Listen("tcp", addr(base+off))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no free block of ports at offsets %v after %d tries", offsets, maxPortRetries)
	return 0
}
