package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestStartTLSFlagErrors: bad TLS flags fail `tenfold start` before it
// opens anything, with the flag (and the file) named.
func TestStartTLSFlagErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.crt")
	base := []string{"start", "--role=data", "--id=2", "--join=127.0.0.1:1", "--data-dir=" + filepath.Join(dir, "d"),
		"--peer-addr=127.0.0.1:0", "--client-addr=127.0.0.1:0"}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--cert-file=" + missing, "--key-file=" + missing}, []string{"--cert-file", missing}},
		{[]string{"--peer-cert-file=" + missing, "--peer-key-file=" + missing}, []string{"--peer-cert-file", missing}},
		{[]string{"--cert-file=" + missing}, []string{"--key-file"}},
		{[]string{"--client-cert-auth", "--cert-file=" + missing, "--key-file=" + missing}, []string{"--client-cert-auth", "--trusted-ca-file"}},
		{[]string{"--peer-client-cert-auth", "--peer-cert-file=" + missing, "--peer-key-file=" + missing}, []string{"--peer-client-cert-auth", "--peer-trusted-ca-file"}},
		{[]string{"--listen-metrics-urls=ftp://127.0.0.1:0"}, []string{"--listen-metrics-urls", "ftp://"}},
		{[]string{"--listen-metrics-urls=https://127.0.0.1:0"}, []string{"https", "--cert-file"}},
	} {
		root := NewRootCommand()
		root.SetArgs(append(append([]string{}, base...), tc.args...))
		err := root.Execute()
		if err == nil {
			t.Fatalf("start %v: no error", tc.args)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("start %v: error %q does not mention %q", tc.args, err, w)
			}
		}
	}
}

func TestClientTLSFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cert=a.crt"}, "--cert and --key"},
		{[]string{"--cacert=/nonexistent/ca.crt"}, "--cacert /nonexistent/ca.crt"},
	} {
		root := NewRootCommand()
		root.SetArgs(append([]string{"get", "k"}, tc.args...))
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("get %v: error %v, want it to mention %q", tc.args, err, tc.want)
		}
	}
}
