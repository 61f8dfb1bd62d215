package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// tenfoldBin is the tenfold binary built once by TestMain; empty under
// -short, where every test skips.
var tenfoldBin string

// moduleRoot is the directory holding go.mod.
var moduleRoot string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if testing.Short() {
		return m.Run()
	}
	root, err := findModuleRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	moduleRoot = root
	dir, err := os.MkdirTemp("", "tenfold-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "tenfold")
	build := exec.Command("go", "build", "-o", bin, "./cmd/tenfold")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/tenfold failed: %v\n%s", err, out)
		return 1
	}
	tenfoldBin = bin
	return m.Run()
}

// findModuleRoot walks up from the working directory (the package
// directory under go test) to the directory with go.mod.
func findModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// needBinary skips t under -short: these tests start real processes and
// take tens of seconds.
func needBinary(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: skipped under -short: starts real tenfold processes (tens of seconds)")
	}
	if tenfoldBin == "" {
		t.Fatal("e2e: tenfold binary was not built")
	}
}
