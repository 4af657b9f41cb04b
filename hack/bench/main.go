// Command bench times export-step against crane push, skopeo copy and the
// protocol floor on a fresh CNCF Distribution registry per run, and writes
// docs/benchmarks.md and docs/benchmarks.png. Benchmarks are not tests: run
// it on a quiet machine.
//
//	go run ./hack/bench            # the full run (about 10 minutes on 2 cores)
//	go run ./hack/bench -quick     # a smoke run: small shapes, one run each, no docs written
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
)

func main() {
	var c config
	flag.BoolVar(&c.quick, "quick", false, "smoke run: small shapes, 1 run each; writes under -work only unless -out is given")
	flag.IntVar(&c.runs, "runs", 5, "interleaved runs per tool and shape")
	flag.StringVar(&c.out, "out", "", "write the report to `FILE`.md and its chart next to it as .png (default docs/benchmarks.md; -quick: none)")
	flag.StringVar(&c.work, "work", "", "scratch `DIR` (default a temporary directory, removed at the end)")
	flag.StringVar(&c.cache, "cache", "", "`DIR` for the installed crane (default $XDG_CACHE_HOME/exportreport/bench)")
	flag.StringVar(&c.only, "only", "", "run only the shapes whose key contains `S` (large, small, unchanged, tag1, tag10, huge; also report2results, gobench)")
	floorLayout := flag.String("floor-push", "", "internal: push the image of the OCI layout `DIR` to the references given as arguments the way the floor does, and exit")
	flag.Parse()
	if *floorLayout != "" {
		if err := floorMain(context.Background(), *floorLayout, flag.Args()); err != nil {
			fmt.Fprintf(os.Stderr, "bench -floor-push: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: takes no arguments, got %q\n", flag.Args())
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, c); err != nil {
		slog.Error("bench failed", "err", err)
		os.Exit(1)
	}
}
