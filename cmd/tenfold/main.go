// Command tenfold is the single tenfold binary: client commands, benchmarks
// and the node roles. See `tenfold --help`.
package main

import "github.com/tenfold/tenfold/internal/cli"

func main() {
	cli.Execute()
}
