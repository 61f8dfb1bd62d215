package host

import (
	"strings"
	"testing"
	"time"
)

// Each relationship Validate checks is refused when broken, and the
// defaults pass.
func TestValidateLimits(t *testing.T) {
	base := func() Config {
		c := Config{NodeID: 1}
		c.SetDefaults()
		return c
	}
	c := base()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"heartbeat not below election", func(c *Config) { c.HeartbeatTicks = c.ElectionTicks }, "HeartbeatTicks"},
		{"keepalive not below liveness", func(c *Config) { c.KeepaliveInterval = c.LivenessTimeout }, "KeepaliveInterval"},
		{"retry below a tick", func(c *Config) { c.RequestRetry = c.TickInterval / 2 }, "RequestRetry"},
		{"batch above queue", func(c *Config) { c.MaxBatchRequests = c.MaxPendingRequests + 1 }, "MaxBatchRequests"},
		{"negative window", func(c *Config) { c.SequencerWindow = -1 }, "SequencerWindow"},
		{"negative tick", func(c *Config) { c.TickInterval = -time.Millisecond }, "TickInterval"},
		{"no initial data nodes", func(c *Config) { c.InitialDataNodes = -1 }, "InitialDataNodes"},
	} {
		c := base()
		tc.set(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v, want an error naming %s", tc.name, err, tc.want)
		}
	}
}
