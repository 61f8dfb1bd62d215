package benchkit

import (
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := DefaultConfig(WorkloadMixed)
	if err := ok.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"bad workload", func(c *Config) { c.Workload = "scan" }, `workload "scan" is not one of put, get, mixed`},
		{"zero clients", func(c *Config) { c.Clients = 0 }, "--clients must be at least 1, got 0"},
		{"negative conns", func(c *Config) { c.Conns = -1 }, "--conns must not be negative"},
		{"more conns than clients", func(c *Config) { c.Clients, c.Conns = 4, 5 }, "--conns 5 exceeds --clients 4"},
		{"no keys", func(c *Config) { c.Keys = 0 }, "--keys must be at least 1"},
		{"short keys", func(c *Config) { c.Keys, c.KeySize = 1000, 2 }, "--key-size 2 is too small for 1000 keys"},
		{"short keys with prefix", func(c *Config) { c.Keys, c.KeySize, c.KeyPrefix = 10, 3, "ab/" }, "need at least 4 bytes"},
		{"negative value", func(c *Config) { c.ValueSize = -1 }, "--value-size must not be negative"},
		{"both ends", func(c *Config) { c.Total = 10 }, "set exactly one of --total"},
		{"no end", func(c *Config) { c.Duration = 0 }, "set exactly one of --total"},
		{"read ratio", func(c *Config) { c.ReadRatio = 1.5 }, "--read-ratio must be between 0 and 1"},
		{"consistency", func(c *Config) { c.Consistency = "strong" }, `--consistency "strong" is not l`},
	}
	for _, c := range cases {
		cfg := ok
		c.mutate(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate() = %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	for clients, want := range map[int]int{1: 1, 8: 8, 64: 8} {
		c := DefaultConfig(WorkloadPut)
		c.Clients = clients
		if got := c.withDefaults().Conns; got != want {
			t.Errorf("clients %d: default conns = %d, want %d", clients, got, want)
		}
	}
	c := DefaultConfig(WorkloadPut)
	c.Conns = 3
	if got := c.withDefaults().Conns; got != 3 {
		t.Errorf("explicit conns changed to %d", got)
	}
	if DefaultConfig(WorkloadPut).Prefill || !DefaultConfig(WorkloadGet).Prefill || !DefaultConfig(WorkloadMixed).Prefill {
		t.Error("prefill should default to on for get and mixed only")
	}
	if d := DefaultConfig(WorkloadGet).Duration; d != 10*time.Second {
		t.Errorf("default duration %v", d)
	}
}

func TestKeys(t *testing.T) {
	c := Config{KeySize: 8, KeyPrefix: "b/"}
	for i, want := range map[int]string{0: "b/000000", 42: "b/000042", 999999: "b/999999"} {
		if got := c.key(i); got != want {
			t.Errorf("key(%d) = %q, want %q", i, got, want)
		}
	}
	c = DefaultConfig(WorkloadPut)
	if got := c.key(c.Keys - 1); len(got) != c.KeySize {
		t.Errorf("key %q has length %d, want %d", got, len(got), c.KeySize)
	}
}
