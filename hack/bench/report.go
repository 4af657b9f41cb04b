package main

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// results is everything one harness run measured.
type results struct {
	Date           time.Time
	Quick          bool
	Runs           int
	Elapsed        time.Duration
	Machine        machine
	Versions       []keyValue
	Shapes         []shapeResult
	Report2Results []float64 // seconds per run
	Binaries       []binarySize
	GoBenchmarks   []goBench
}

type machine struct {
	CPU                string
	Cores              int
	MemGiB             float64
	Kernel             string
	LoadStart, LoadEnd string
}

type keyValue struct{ Key, Value string }

type binarySize struct {
	Name  string
	Bytes int64
}

type shapeResult struct {
	Key, Title string
	Tools      []toolResult
}

type toolResult struct {
	Tool    string
	Seconds []float64
	RSSKiB  []int64 // peak RSS per run, for shapes that measure it
}

func (s shapeResult) tool(name string) *toolResult {
	for i := range s.Tools {
		if s.Tools[i].Tool == name {
			return &s.Tools[i]
		}
	}
	return nil
}

func (r results) shape(key string) *shapeResult {
	for i := range r.Shapes {
		if r.Shapes[i].Key == key {
			return &r.Shapes[i]
		}
	}
	return nil
}

// stats returns min, median and max; the median of an even count is the
// mean of the middle two.
func stats(v []float64) (lo, med, hi float64) {
	if len(v) == 0 {
		return 0, 0, 0
	}
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return s[0], med, s[n-1]
}

func median(v []float64) float64 { _, m, _ := stats(v); return m }

// target is one goal of issue 6, checked against the measurements.
type target struct {
	Goal     string
	Measured string
	Met      bool
	Known    bool // false: not measured in this run
}

const (
	binaryBudget = 12_000_000 // bytes, "12 MB"
	rssBudget    = 64 << 20
)

func targets(r results) []target {
	var out []target
	ratio := func(shapeKey, tool string) (float64, bool) {
		s := r.shape(shapeKey)
		if s == nil {
			return 0, false
		}
		e, o := s.tool(toolExport), s.tool(tool)
		if e == nil || o == nil || len(e.Seconds) == 0 || len(o.Seconds) == 0 || median(o.Seconds) == 0 {
			return 0, false
		}
		return median(e.Seconds) / median(o.Seconds), true
	}
	add := func(goal string, limit float64, shapeKey, tool string) {
		v, ok := ratio(shapeKey, tool)
		t := target{Goal: goal, Known: ok}
		if ok {
			t.Measured, t.Met = fmt.Sprintf("%.2f ×", v), v <= limit
		}
		out = append(out, t)
	}
	large, small := title(r, "large"), title(r, "small")
	add(large+": export-step ≤ 1.05 × crane", 1.05, "large", toolCrane)
	add(large+": export-step ≤ 1.05 × the floor", 1.05, "large", toolFloor)
	add(small+": export-step ≤ 0.6 × crane", 0.6, "small", toolCrane)
	for _, s := range r.Shapes {
		add(s.Title+": export-step ≤ 0.5 × skopeo", 0.5, s.Key, toolSkopeo)
	}
	t := target{Goal: "unchanged re-export: export-step ≤ 150 ms"}
	if s := r.shape("unchanged"); s != nil {
		if e := s.tool(toolExport); e != nil && len(e.Seconds) > 0 {
			m := median(e.Seconds)
			t.Known, t.Measured, t.Met = true, fmt.Sprintf("%.0f ms", m*1000), m <= 0.150
		}
	}
	out = append(out, t)
	t = target{Goal: "10 tags: export-step ≤ 1.2 × one tag"}
	if s1, s10 := r.shape("tag1"), r.shape("tag10"); s1 != nil && s10 != nil {
		m1, m10 := median(s1.tool(toolExport).Seconds), median(s10.tool(toolExport).Seconds)
		if m1 > 0 {
			t.Known, t.Measured, t.Met = true, fmt.Sprintf("%.2f ×", m10/m1), m10/m1 <= 1.2
		}
	}
	out = append(out, t)
	t = target{Goal: title(r, "huge") + ": export-step peak RSS ≤ 64 MiB"}
	if s := r.shape("huge"); s != nil {
		if e := s.tool(toolExport); e != nil && len(e.RSSKiB) > 0 {
			peak := slices.Max(e.RSSKiB) * 1024
			t.Known, t.Measured, t.Met = true, fmt.Sprintf("%.1f MiB (max of runs)", float64(peak)/(1<<20)), peak <= rssBudget
		}
	}
	out = append(out, t)
	t = target{Goal: "report2results ≤ 5 ms per run"}
	if len(r.Report2Results) > 0 {
		m := median(r.Report2Results)
		t.Known, t.Measured, t.Met = true, fmt.Sprintf("%.1f ms (median)", m*1000), m <= 0.005
	}
	out = append(out, t)
	for _, b := range r.Binaries {
		out = append(out, target{Goal: b.Name + " ≤ 12 MB stripped", Known: true,
			Measured: fmt.Sprintf("%.1f MB", float64(b.Bytes)/1e6), Met: b.Bytes <= binaryBudget})
	}
	return out
}

func title(r results, key string) string {
	if s := r.shape(key); s != nil {
		return s.Title
	}
	return key
}

func fmtSeconds(v float64) string {
	if v < 1 {
		return fmt.Sprintf("%.0f ms", v*1000)
	}
	return fmt.Sprintf("%.2f s", v)
}

// timingTable is the markdown table of every shape and tool.
func timingTable(w io.Writer, r results) {
	fmt.Fprintln(w, "| shape | tool | min | median | max | median ÷ crane | median ÷ floor | peak RSS (max) |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, s := range r.Shapes {
		var craneMed, floorMed float64
		if c := s.tool(toolCrane); c != nil {
			craneMed = median(c.Seconds)
		}
		if f := s.tool(toolFloor); f != nil {
			floorMed = median(f.Seconds)
		}
		for _, t := range s.Tools {
			lo, med, hi := stats(t.Seconds)
			rel := func(base float64) string {
				if base == 0 {
					return "–"
				}
				return fmt.Sprintf("%.2f", med/base)
			}
			rss := "–"
			if len(t.RSSKiB) > 0 {
				rss = fmt.Sprintf("%.1f MiB", float64(slices.Max(t.RSSKiB))/1024)
			}
			name := t.Tool
			if name == toolExport {
				name = "**" + name + "**"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Title, name,
				fmtSeconds(lo), fmtSeconds(med), fmtSeconds(hi), rel(craneMed), rel(floorMed), rss)
		}
	}
}

func targetTable(w io.Writer, r results) {
	fmt.Fprintln(w, "| target (issue 6) | measured | |")
	fmt.Fprintln(w, "| --- | ---: | --- |")
	for _, t := range targets(r) {
		verdict := "not measured"
		switch {
		case t.Known && t.Met:
			verdict = "met"
		case t.Known:
			verdict = "**missed**"
		}
		m := t.Measured
		if m == "" {
			m = "–"
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", t.Goal, m, verdict)
	}
}

// printSummary writes the tables to w (the terminal).
func printSummary(w io.Writer, r results) {
	timingTable(w, r)
	fmt.Fprintln(w)
	targetTable(w, r)
}

// analysisMarker starts the hand-written part of docs/benchmarks.md, which
// renderMarkdown keeps from the previous file.
const analysisMarker = "<!-- Hand-written analysis below: hack/bench keeps everything after this line. -->"

// renderMarkdown is docs/benchmarks.md: the generated tables, then the
// hand-written analysis found after analysisMarker in previous.
func renderMarkdown(r results, chart string, previous []byte) string {
	var b bytes.Buffer
	fmt.Fprintln(&b, "# Benchmarks")
	fmt.Fprintln(&b)
	fmt.Fprintln(&b, "<!-- Generated by `go run ./hack/bench` down to the analysis marker; edit only the analysis. -->")
	fmt.Fprintln(&b)
	fmt.Fprintln(&b, "Reproduce (from the repository root, on a quiet machine): `go run ./hack/bench`.")
	fmt.Fprintln(&b, "Where a target is missed, [the analysis](#analysis) says by how much, why, and what would close it.")
	fmt.Fprintln(&b)
	fmt.Fprintf(&b, "Every run pushes to a fresh CNCF Distribution registry on 127.0.0.1 (plain HTTP, filesystem storage); the "+
		"tools run interleaved, %d runs per shape (the 1 GiB shape: at most 3), from the same OCI layout of uncompressed, "+
		"incompressible layers. `floor` is the harness itself sending the same blobs with the fewest requests Distribution "+
		"accepts (POST + one monolithic PUT per blob, no HEAD, 4 at a time; a manifest PUT per tag, 4 at a time; one manifest HEAD per tag "+
		"when everything is there). crane pushes with `crane push` and adds tags with `crane tag`; skopeo runs one "+
		"`skopeo copy` per tag. export-step runs with `-jobs 4`. Times are wall clock of the whole command, process start included.\n", r.Runs)
	fmt.Fprintln(&b)
	fmt.Fprintf(&b, "![median time relative to crane push](%s)\n\n", chart)
	fmt.Fprintln(&b, "## Targets")
	fmt.Fprintln(&b)
	targetTable(&b, r)
	fmt.Fprintln(&b)
	fmt.Fprintln(&b, "## Timings")
	fmt.Fprintln(&b)
	timingTable(&b, r)
	fmt.Fprintln(&b)
	if len(r.Report2Results) > 0 {
		lo, med, hi := stats(r.Report2Results)
		fmt.Fprintf(&b, "report2results on a typical report (two tags; IMAGE_DIGEST, IMAGE_URL, IMAGES and an OCI layout; `-offline`), "+
			"%d runs: min %.1f ms, median %.1f ms, max %.1f ms.\n\n", len(r.Report2Results), lo*1000, med*1000, hi*1000)
	}
	fmt.Fprintln(&b, "Binary sizes (`go build -trimpath -ldflags='-s -w'`, linux/amd64):")
	fmt.Fprintln(&b)
	for _, bs := range r.Binaries {
		fmt.Fprintf(&b, "- %s: %d bytes (%.1f MB)\n", bs.Name, bs.Bytes, float64(bs.Bytes)/1e6)
	}
	fmt.Fprintln(&b)
	if len(r.GoBenchmarks) > 0 {
		fmt.Fprintf(&b, "Go benchmarks of the hot paths (`go test -run '^$' -bench . -benchmem %s`, same machine, run by the harness after the pushes):\n\n",
			strings.Join(goBenchPackages, " "))
		goBenchTable(&b, r.GoBenchmarks)
		fmt.Fprintln(&b)
	}
	fmt.Fprintln(&b, "## Machine and versions")
	fmt.Fprintln(&b)
	fmt.Fprintf(&b, "- date: %s; harness run took %s\n", r.Date.Format("2006-01-02 15:04 MST"), r.Elapsed)
	fmt.Fprintf(&b, "- CPU: %s, %d cores; %.1f GiB memory; Linux %s\n", r.Machine.CPU, r.Machine.Cores, r.Machine.MemGiB, r.Machine.Kernel)
	fmt.Fprintf(&b, "- load average (1, 5, 15 min): %s at the start, %s at the end\n", r.Machine.LoadStart, r.Machine.LoadEnd)
	for _, kv := range r.Versions {
		fmt.Fprintf(&b, "- %s: %s\n", kv.Key, strings.TrimSpace(kv.Value))
	}
	fmt.Fprintln(&b)
	fmt.Fprintln(&b, analysisMarker)
	if _, tail, ok := bytes.Cut(previous, []byte(analysisMarker+"\n")); ok {
		b.Write(tail)
	} else {
		fmt.Fprintln(&b)
		fmt.Fprintln(&b, "## Analysis")
	}
	return b.String()
}
