package sim

import "math/rand/v2"

// buggify is a run's BUGGIFY (FoundationDB): the core asks it, by site
// name, whether to take a rare but legal path (core.Config.Buggify). Each
// site is on for the whole run with probability 1/2, drawn from the seed
// when the site is first asked; an enabled site fires once in 20 asks.
// Nothing fires after the heal, so recovery and the final checks judge an
// unperturbed cluster. Its own random stream keeps a run without
// --buggify byte for byte what it was.
type buggify struct {
	rng *rand.Rand
	on  map[string]bool
}

func newBuggify(seed uint64) *buggify {
	return &buggify{rng: rand.New(rand.NewPCG(seed, 0xb066)), on: map[string]bool{}}
}

// buggify is the hook the sim's cores call (nil without --buggify).
func (s *Sim) buggify(site string) bool {
	b := s.bug
	if b == nil || s.now >= s.healAt {
		return false
	}
	on, seen := b.on[site]
	if !seen {
		on = b.rng.IntN(2) == 0
		b.on[site] = on
	}
	return on && b.rng.IntN(20) == 0
}

// buggifyHook is the hook for a node's core: nil without --buggify.
func (s *Sim) buggifyHook() func(string) bool {
	if s.bug == nil {
		return nil
	}
	return s.buggify
}
