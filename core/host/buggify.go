package host

import "math/rand/v2"

// Buggify pushes correct code onto rare but legal paths in simulation, as
// FoundationDB's BUGGIFY does: forced leader transfers, ranges that never
// quiesce, a sequencer window extended only by what a grant needs, one
// request per write cycle, early resends. It is separate from Bugs (which
// are defects the checkers must catch): a run with Buggify on must pass
// every check.
//
// Each site is enabled or not for the whole life of the node, with
// probability 1/4, the first time it is reached; an enabled site then fires
// with its own probability each time. A nil Buggify (production) never
// fires. Draws come from the node's own seeded source, so runs replay.
type Buggify struct {
	rng     *rand.Rand
	enabled map[string]bool
}

// NewBuggify returns a Buggify drawing from rng.
func NewBuggify(rng *rand.Rand) *Buggify {
	return &Buggify{rng: rng, enabled: map[string]bool{}}
}

// Fire reports whether site fires now, with probability p if it is enabled.
func (b *Buggify) Fire(site string, p float64) bool {
	if b == nil {
		return false
	}
	on, ok := b.enabled[site]
	if !ok {
		on = b.rng.IntN(4) == 0
		b.enabled[site] = on
	}
	return on && b.rng.Float64() < p
}

// Buggify sites (names are stable: they appear in no output, but keep
// them unique).
const (
	BuggifyLeaderTransfer = "leader-transfer" // a leader hands its range to an up-to-date follower
	BuggifyNoQuiesce      = "no-quiesce"      // an idle range keeps ticking
	BuggifySmallWindow    = "small-window"    // the sequencer extends its window only by what it grants
	BuggifyTinyBatch      = "tiny-batch"      // a write cycle takes one request
	BuggifyEarlyResend    = "early-resend"    // the router resends a request before its retry time
)
