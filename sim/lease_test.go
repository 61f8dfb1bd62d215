package sim

import (
	"testing"

	"github.com/tenfold/tenfold/core"
)

// TestLeaseRevokeReachesEveryRange is the regression test of issue 6's
// defect 2: with more ranges than key groups, some ranges get no client
// traffic, so a system leader without a replica of one of them never learns
// its leader. It used to send that range's LeaseRevoked to the range's first
// replica, which dropped it when it was a follower, forever: revokes and
// expiries never finished (L2: a lease seen expiring is not gone by the end
// of the client phase). These seeds failed so before revokes were routed
// like client requests (not-leader hints, rotation over replicas).
func TestLeaseRevokeReachesEveryRange(t *testing.T) {
	for _, tc := range []struct {
		seed   uint64
		faults []FaultKind
	}{
		{2, nil}, {3, nil}, {8, nil}, // fault-free: tenfold sim --seed=3 --ranges=8 --faults=none
		{3, AllFaults}, // tenfold sim --seed=3 --ranges=8 --faults=all
	} {
		cfg := DefaultConfig()
		cfg.Seed, cfg.Ranges, cfg.Faults, cfg.FaultsRandom = tc.seed, 8, tc.faults, false
		r := run(t, cfg)
		if r.Failed() {
			report(t, r)
		}
		if r.LeasesDead == 0 {
			t.Errorf("seed %d: no lease was seen revoked or expired: the lease checker checked nothing", tc.seed)
		}
	}
}

// TestCatchesRevokeSkipsRange: a revoke that never tells one data range to
// delete the lease's keys leaves them readable after the revoke was
// acknowledged (S10).
func TestCatchesRevokeSkipsRange(t *testing.T) {
	findBug(t, bugConfig(core.Bugs{RevokeSkipsRange: true}), 5, "S10")
}

// TestCatchesPutIgnoresRevoke: a data range that accepts puts with a lease
// whose keys it already deleted for the lease's revoke lets a put with a
// dead lease succeed, and its key stays (S10).
func TestCatchesPutIgnoresRevoke(t *testing.T) {
	findBug(t, bugConfig(core.Bugs{PutIgnoresRevoke: true}), 5, "S10")
}
