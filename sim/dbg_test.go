package sim

import (
	"fmt"
	"sort"
	"testing"
)

func TestDebugLatency(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Faults, cfg.FaultsRandom = nil, false
	s, _ := New(cfg)
	r := s.Run()
	var lat []float64
	for _, op := range r.History {
		lat = append(lat, float64(op.Return-op.Call)/1e6)
	}
	sort.Float64s(lat)
	fmt.Println(r.Summary())
	fmt.Printf("latency ms p10 %.1f p50 %.1f p90 %.1f p99 %.1f max %.1f\n", lat[len(lat)/10], lat[len(lat)/2], lat[len(lat)*9/10], lat[len(lat)*99/100], lat[len(lat)-1])
	r.WriteArtifacts("/tmp/simout", "x")
	fmt.Println(r.Traffic.String())
}
