// Package e2e holds end-to-end tests that run the real tenfold binary as
// separate processes on loopback, kill them with SIGKILL, restart them, and
// drive them with clientv3 and etcdctl. The package has no code of its own
// outside its tests; run it with `go test ./e2e/` (skipped under -short).
//
// TestNetFault (netfault_test.go, netns_test.go) runs the processes in Linux
// network namespaces instead, as root, and injects real network, process and
// disk faults from a seeded schedule; docs/faults.md describes it.
package e2e
