package sim

import (
	"testing"

	"github.com/tenfold/tenfold/core"
)

// TestCatchesStaleWatchStart: a watch from now that starts after the local
// replica's resolved revision (the runtime's old "now", a stale view)
// instead of after the store revision at creation would deliver writes
// acknowledged before it was created; the watchers' start check (S6 for
// watches) sees it.
func TestCatchesStaleWatchStart(t *testing.T) {
	cfg := bugConfig(core.Bugs{StaleWatchStart: true})
	cfg.Ranges = 2
	findBug(t, cfg, 10, "S6-watch")
}
