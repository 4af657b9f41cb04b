// Command bench times export-step against crane push, skopeo copy and the
// protocol floor on a fresh CNCF Distribution registry per run, and writes
// docs/benchmarks.md and docs/benchmarks.png. Benchmarks are not tests: run
// it on a quiet machine.
//
//	go run ./hack/bench            # the full run (about 36 minutes on 2 cores, 17 of them crane at 10,000 layers)
//	go run ./hack/bench -quick     # a smoke run: small shapes, one run each, no docs written
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"time"
)

func flagGiven(name string) bool {
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

func main() {
	var c config
	flag.BoolVar(&c.quick, "quick", false, "smoke run: small shapes, 1 run each; writes under -work only unless -out is given")
	flag.IntVar(&c.runs, "runs", 5, "interleaved runs per tool and shape")
	flag.StringVar(&c.out, "out", "", "write the report to `FILE`.md and its chart next to it as .png (default docs/benchmarks.md; -quick: none)")
	flag.StringVar(&c.work, "work", "", "scratch `DIR` (default a temporary directory, removed at the end)")
	flag.StringVar(&c.cache, "cache", "", "`DIR` for the installed crane (default $XDG_CACHE_HOME/exportreport/bench)")
	flag.StringVar(&c.only, "only", "", "run only the shapes whose key contains `S` (large, small, unchanged, tag1, tag10, huge, rebuild, archive, daemon; also compressors, growth, report2results, gobench)")
	growthLayers := flag.String("growth-layers", "1,10,100,1000,10000", "layer counts `N,N,...` of the growth sweep (-quick: 1,10,100)")
	growthTags := flag.String("growth-tags", "1,10,100", "tag counts `N,N,...` of the growth sweep (-quick: 1,10)")
	flag.IntVar(&c.growthRuns, "growth-runs", 3, "interleaved runs per tool and size of the growth sweep")
	flag.DurationVar(&c.growthTimeout, "growth-timeout", 10*time.Minute, "kill a growth run after `D`; that tool is not run at that size again, nor at larger ones")
	floorLayout := flag.String("floor-push", "", "internal: push the image of the OCI layout `DIR` (or docker-archive:FILE, docker-daemon:REF) to the references given as arguments the way the floor does, and exit")
	writeArchive := flag.String("write-archive", "", "write the toolchain docker-archive of the compression shapes under `DIR`, print its path, and exit")
	flag.Parse()
	if *writeArchive != "" {
		img, err := writeToolchainArchive(*writeArchive, runtime.GOROOT(), toolchainLayers(c.quick))
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench -write-archive: %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("%s (%s; layers %d bytes uncompressed)\n", img.archive, img.ref, img.rawBytes)
		return
	}
	if *floorLayout != "" {
		if err := floorMain(context.Background(), *floorLayout, flag.Args()); err != nil {
			fmt.Fprintf(os.Stderr, "bench -floor-push: %v\n", err)
			os.Exit(1)
		}
		return
	}
	for _, f := range []struct {
		name, value, quick string
		dst                *[]int
	}{{"growth-layers", *growthLayers, "1,10,100", &c.growthLayers}, {"growth-tags", *growthTags, "1,10", &c.growthTags}} {
		v := f.value
		if c.quick && !flagGiven(f.name) {
			v = f.quick
		}
		n, err := parseCounts(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: -%s %v\n", f.name, err)
			os.Exit(2)
		}
		*f.dst = n
	}
	if c.quick && !flagGiven("growth-runs") {
		c.growthRuns = 1
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
