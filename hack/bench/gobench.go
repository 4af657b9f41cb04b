package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
)

// goBenchPackages hold the testing.B benchmarks of the hot paths (report
// read and write, results, index.json) that the harness runs and reports.
var goBenchPackages = []string{"./pkg/report", "./pkg/results", "./pkg/layout"}

// goBench is one line of `go test -bench` output.
type goBench struct {
	Name     string // package-relative, GOMAXPROCS suffix dropped
	NsPerOp  float64
	BytesOp  int64
	AllocsOp int64
}

// runGoBenchmarks runs the Go benchmarks of goBenchPackages, each for
// benchtime (e.g. "1s", "3x").
func runGoBenchmarks(ctx context.Context, benchtime string) ([]goBench, error) {
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", benchtime}, goBenchPackages...)
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return parseGoBench(bytes.NewReader(out)), nil
}

// parseGoBench reads the benchmark lines of `go test -bench -benchmem`
// output, prefixing each name with its package's last element.
func parseGoBench(r io.Reader) []goBench {
	var out []goBench
	pkg := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "pkg:" {
			pkg = f[1][strings.LastIndex(f[1], "/")+1:]
			continue
		}
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || f[3] != "ns/op" {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndex(name, "-"); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		b := goBench{Name: pkg + " " + name}
		b.NsPerOp, _ = strconv.ParseFloat(f[2], 64)
		for i := 4; i+1 < len(f); i += 2 {
			n, _ := strconv.ParseInt(f[i], 10, 64)
			switch f[i+1] {
			case "B/op":
				b.BytesOp = n
			case "allocs/op":
				b.AllocsOp = n
			}
		}
		out = append(out, b)
	}
	return out
}

// fmtNs prints a time per operation in a fitting unit.
func fmtNs(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

func goBenchTable(w io.Writer, bs []goBench) {
	fmt.Fprintln(w, "| benchmark | time/op | bytes/op | allocs/op |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: |")
	for _, b := range bs {
		fmt.Fprintf(w, "| %s | %s | %d | %d |\n", b.Name, fmtNs(b.NsPerOp), b.BytesOp, b.AllocsOp)
	}
}
