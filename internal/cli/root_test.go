package cli

import (
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func TestRootCommand(t *testing.T) {
	root := NewRootCommand()
	for _, name := range []string{"put", "get", "del", "watch", "status", "bench"} {
		if c, _, err := root.Find([]string{name}); err != nil || c.Name() != name {
			t.Errorf("subcommand %s not found: %v", name, err)
		}
	}
	pf := root.PersistentFlags()
	if eps, _ := pf.GetStringSlice(flagEndpoints); len(eps) != 1 || eps[0] != "127.0.0.1:2379" {
		t.Errorf("default endpoints %v", eps)
	}
	for _, name := range []string{flagDialTimeout, flagCommandTimeout} {
		if d, _ := pf.GetDuration(name); d != 5*time.Second {
			t.Errorf("default --%s = %v, want 5s", name, d)
		}
	}
}

func TestRegisterCommand(t *testing.T) {
	saved := extraCommands
	defer func() { extraCommands = saved }()
	registerCommand(func() *cobra.Command { return &cobra.Command{Use: "extra-for-test"} })
	if c, _, err := NewRootCommand().Find([]string{"extra-for-test"}); err != nil || c.Name() != "extra-for-test" {
		t.Errorf("registered command not added: %v", err)
	}
}

func TestConnFlags(t *testing.T) {
	root := NewRootCommand()
	get, _, _ := root.Find([]string{"get"})
	if err := get.ParseFlags([]string{"--endpoints", "a:1,b:2", "--dial-timeout", "1s"}); err != nil {
		t.Fatal(err)
	}
	cf, err := readConnFlags(get)
	if err != nil {
		t.Fatal(err)
	}
	if len(cf.endpoints) != 2 || cf.endpoints[1] != "b:2" || cf.dialTimeout != time.Second || cf.commandTimeout != 5*time.Second {
		t.Errorf("conn flags %+v", cf)
	}
	for _, bad := range []connFlags{
		{endpoints: nil, dialTimeout: time.Second, commandTimeout: time.Second},
		{endpoints: []string{"a:1", " "}, dialTimeout: time.Second, commandTimeout: time.Second},
		{endpoints: []string{"a:1"}, dialTimeout: 0, commandTimeout: time.Second},
		{endpoints: []string{"a:1"}, dialTimeout: time.Second, commandTimeout: -1},
	} {
		if bad.validate() == nil {
			t.Errorf("validate(%+v) = nil, want an error", bad)
		}
	}
}
