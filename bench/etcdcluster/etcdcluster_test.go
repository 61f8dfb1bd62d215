package etcdcluster

import (
	"context"
	"testing"
	"time"

	"github.com/tenfold/tenfold/benchkit"
)

// TestPutWorkloadAgainstEmbeddedEtcd runs the benchmark runner end to end
// against a real 3-member etcd: every operation must succeed.
func TestPutWorkloadAgainstEmbeddedEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-member etcd cluster and runs a 2 s workload")
	}
	ctx := context.Background()
	c, err := Start(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	cfg := benchkit.DefaultConfig(benchkit.WorkloadPut)
	cfg.Clients = 16
	cfg.Duration = 2 * time.Second
	res, err := benchkit.Run(ctx, c.Endpoints(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.Ops == 0 || res.Throughput <= 0 {
		t.Errorf("no successful operations: %v", res)
	}
	if res.Errors != 0 {
		t.Errorf("%d operations failed, the first: %s", res.Errors, res.FirstError)
	}
	if res.Writes != res.Ops || res.Reads != 0 {
		t.Errorf("put workload did %d reads and %d writes of %d ops", res.Reads, res.Writes, res.Ops)
	}
}
