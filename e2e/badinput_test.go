package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestBadInput sends requests etcd rejects to a real server and checks that
// clientv3 sees etcd's errors.
func TestBadInput(t *testing.T) {
	needBinary(t)
	const (
		maxRequestBytes = 4096
		maxTxnOps       = 8
		grpcSlackBytes  = 512 * 1024 // etcd's gRPC receive limit is max-request-bytes plus this
	)
	d := startDev(t, fmt.Sprintf("--max-request-bytes=%d", maxRequestBytes), fmt.Sprintf("--max-txn-ops=%d", maxTxnOps))
	cli := newClient(t, d.endpoints...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	wantErr := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: error %v, want %v", what, err, want)
		}
	}
	noErr := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	_, err := cli.Put(ctx, "", "v")
	wantErr("put with empty key", err, rpctypes.ErrEmptyKey)
	_, err = cli.Get(ctx, "")
	wantErr("get with empty key", err, rpctypes.ErrEmptyKey)
	_, err = cli.Delete(ctx, "")
	wantErr("delete with empty key", err, rpctypes.ErrEmptyKey)

	_, err = cli.Put(ctx, "big", strings.Repeat("x", maxRequestBytes/2))
	noErr("put of half --max-request-bytes", err)
	_, err = cli.Put(ctx, "big", strings.Repeat("x", 2*maxRequestBytes))
	wantErr("put larger than --max-request-bytes", err, rpctypes.ErrRequestTooLarge)
	_, err = cli.Put(ctx, "big", strings.Repeat("x", maxRequestBytes+grpcSlackBytes+1024))
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("put larger than the gRPC receive limit: error %v, want code ResourceExhausted (as etcd)", err)
	}
	g, err := cli.Get(ctx, "big")
	noErr("get big", err)
	if len(g.Kvs) != 1 || len(g.Kvs[0].Value) != maxRequestBytes/2 {
		t.Errorf("a rejected put changed the key: get big = %d kvs", len(g.Kvs))
	}

	puts := func(n int, key func(i int) string) []clientv3.Op {
		var ops []clientv3.Op
		for i := range n {
			ops = append(ops, clientv3.OpPut(key(i), "v"))
		}
		return ops
	}
	distinct := func(i int) string { return fmt.Sprintf("txn/%d", i) }
	_, err = cli.Txn(ctx).Then(puts(maxTxnOps, distinct)...).Commit()
	noErr(fmt.Sprintf("txn of %d puts (--max-txn-ops)", maxTxnOps), err)
	_, err = cli.Txn(ctx).Then(puts(maxTxnOps+1, distinct)...).Commit()
	wantErr(fmt.Sprintf("txn of %d puts", maxTxnOps+1), err, rpctypes.ErrTooManyOps)
	_, err = cli.Txn(ctx).Then(puts(2, func(int) string { return "txn/dup" })...).Commit()
	wantErr("txn putting one key twice", err, rpctypes.ErrDuplicateKey)
	_, err = cli.Txn(ctx).Then(clientv3.OpPut("txn/3", "v"), clientv3.OpDelete("txn/", clientv3.WithPrefix())).Commit()
	wantErr("txn putting a key and deleting a range holding it", err, rpctypes.ErrDuplicateKey)

	p1, err := cli.Put(ctx, "rev", "1")
	noErr("put rev 1", err)
	_, err = cli.Put(ctx, "rev", "2")
	noErr("put rev 2", err)
	p3, err := cli.Put(ctx, "rev", "3")
	noErr("put rev 3", err)
	_, err = cli.Compact(ctx, p3.Header.Revision)
	noErr("compact", err)
	_, err = cli.Get(ctx, "rev", clientv3.WithRev(p1.Header.Revision))
	wantErr("get at a compacted revision", err, rpctypes.ErrCompacted)
	g, err = cli.Get(ctx, "rev", clientv3.WithRev(p3.Header.Revision))
	noErr("get at the compaction revision", err)
	if len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "3" {
		t.Errorf("get at the compaction revision %d: %v, want value 3", p3.Header.Revision, g.Kvs)
	}
	future := p3.Header.Revision + 1000
	_, err = cli.Get(ctx, "rev", clientv3.WithRev(future))
	wantErr("get at a future revision", err, rpctypes.ErrFutureRev)
	_, err = cli.Compact(ctx, future)
	wantErr("compact at a future revision", err, rpctypes.ErrFutureRev)
}

// TestStartMalformedJoin checks that `tenfold start` rejects a malformed
// --join with a message naming the flag, and exits non-zero.
func TestStartMalformedJoin(t *testing.T) {
	needBinary(t)
	const exitTimeout = 10 * time.Second
	dir := t.TempDir()
	ports := freePorts(t, 2)
	for _, join := range []string{"", "127.0.0.1", "127.0.0.1:notaport", "127.0.0.1:70000", ":2380", "127.0.0.1:2380,"} {
		t.Run(fmt.Sprintf("join=%q", join), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, tenfoldBin, "start", "--role=data", "--id=2", "--join="+join,
				"--peer-addr="+addr(ports[0]), "--client-addr="+addr(ports[1]), "--data-dir="+filepath.Join(dir, "data"))
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("tenfold start --join=%q still running after %v; output:\n%s", join, exitTimeout, out.String())
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("tenfold start --join=%q: %v, want a non-zero exit; output:\n%s", join, err, out.String())
			}
			if !strings.Contains(out.String(), "--join") {
				t.Errorf("tenfold start --join=%q exited %d, but its output does not name --join:\n%s", join, exit.ExitCode(), out.String())
			}
			t.Logf("exit %d: %s", exit.ExitCode(), firstLine(out.String()))
		})
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
