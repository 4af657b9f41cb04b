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
	Report2Results []r2rTiming // seconds per run, by input
	Binaries       []binarySize
	GoBenchmarks   []goBench
	Skipped        []keyValue // shape title, why
	Compressors    []compressorResult
	Growth         []growthPoint
	GrowthChart    string // file name of the growth chart, next to the report
	ZstdPull       string // what the Docker engine did with a zstd image
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
	RawBytes   int64    // compression shapes: uncompressed layers
	Unchanged  []string // rebuild: digests of the blobs the previous build has too
}

type toolResult struct {
	Tool        string
	Seconds     []float64
	RSSKiB      []int64 // peak RSS per run, for shapes that measure it
	StoredBytes []int64 // per run: config and layers in the registry
	Requests    []requestCount
	Digest      string // of the first run
	Digests     string // "same in every run" or "differ between runs"
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
		if slices.Contains(issue6Shapes, s.Key) {
			add(s.Title+": export-step ≤ 0.5 × skopeo", 0.5, s.Key, toolSkopeo)
		}
	}
	// Issue 14.
	for _, key := range []string{"archive", "daemon"} {
		if r.shape(key) == nil {
			continue
		}
		add(title(r, key)+": export-step ≤ 0.7 × skopeo", 0.7, key, toolSkopeo)
		t := target{Goal: title(r, key) + ": export-step stores ≤ 1.05 × skopeo's bytes"}
		if s := r.shape(key); s != nil {
			if e, o := s.tool(toolExport), s.tool(toolSkopeo); e != nil && o != nil && len(e.StoredBytes) > 0 && len(o.StoredBytes) > 0 {
				v := medianInt(e.StoredBytes) / medianInt(o.StoredBytes)
				t.Known, t.Measured, t.Met = true, fmt.Sprintf("%.3f ×", v), v <= 1.05
			}
		}
		out = append(out, t)
	}
	if s := r.shape("rebuild"); s != nil {
		add(s.Title+": export-step ≤ 1.1 × the floor", 1.1, "rebuild", toolFloor)
		t := target{Goal: s.Title + ": export-step ≤ 1 request per unchanged blob"}
		if e := s.tool(toolExport); e != nil && len(e.Requests) > 0 {
			most := maxPerBlob(e.Requests, s.Unchanged)
			t.Known, t.Measured, t.Met = true, fmt.Sprintf("at most %d (%d blobs, every run)", most, len(s.Unchanged)), most <= 1
		}
		out = append(out, t)
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
	t = target{Goal: "report2results ≤ 5 ms per run, any input"}
	if len(r.Report2Results) > 0 {
		worst, which := 0.0, ""
		for _, x := range r.Report2Results {
			if m := median(x.Seconds); m >= worst {
				worst, which = m, x.Input
			}
		}
		t.Known, t.Measured, t.Met = true, fmt.Sprintf("%.1f ms (median; slowest input: %s)", worst*1000, which), worst <= 0.005
	}
	out = append(out, t)
	for _, b := range r.Binaries {
		out = append(out, target{Goal: b.Name + " ≤ 12 MB stripped", Known: true,
			Measured: fmt.Sprintf("%.1f MB", float64(b.Bytes)/1e6), Met: b.Bytes <= binaryBudget})
	}
	return out
}

// issue6Shapes are the registry shapes issue 6 set targets for.
var issue6Shapes = []string{"large", "small", "unchanged", "tag1", "tag10", "huge"}

// maxPerBlob is the most requests any of the blobs got in any run.
func maxPerBlob(runs []requestCount, blobs []string) int {
	most := 0
	for _, rc := range runs {
		for _, b := range blobs {
			most = max(most, rc.PerBlob[b])
		}
	}
	return most
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
	fmt.Fprintln(w, "| shape | tool | min | median | max | median ÷ crane | median ÷ floor | peak RSS (max) | stored | requests |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
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
			stored, reqs := "–", "–"
			if len(t.StoredBytes) > 0 {
				stored = fmtMB(medianInt(t.StoredBytes))
			}
			if len(t.Requests) > 0 {
				n := make([]int64, len(t.Requests))
				for i, rc := range t.Requests {
					n[i] = int64(rc.total())
				}
				reqs = fmt.Sprintf("%.0f", medianInt(n))
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Title, name,
				fmtSeconds(lo), fmtSeconds(med), fmtSeconds(hi), rel(craneMed), rel(floorMed), rss, stored, reqs)
		}
	}
}

func fmtMB(b float64) string { return fmt.Sprintf("%.1f MB", b/1e6) }

func targetTable(w io.Writer, r results) {
	fmt.Fprintln(w, "| target (issues 6 and 14) | measured | |")
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
	compressionTable(w, r)
	fmt.Fprintln(w)
	rebuildTable(w, r)
	fmt.Fprintln(w)
	compressorTable(w, r)
	fmt.Fprintln(w)
	growthTable(w, r)
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
	fmt.Fprintf(&b, "Every run pushes to a fresh CNCF Distribution registry on 127.0.0.1 (plain HTTP, filesystem storage, access log on: "+
		"it counts the requests); the tools run interleaved, %d runs per shape (the 1 GiB shape: at most 3). The registry shapes "+
		"push the same OCI layout of gzip-compressed (as builders write them), incompressible layers: every tool pushes the same bytes, "+
		"and the harness checks that every tag has the layout's digest, whatever the tool. `floor` is the harness itself sending the same blobs with the fewest requests Distribution "+
		"accepts (POST + one monolithic PUT per blob, no HEAD, 4 at a time; a manifest PUT per tag, 4 at a time; one manifest HEAD per tag "+
		"when everything is there; on a rebuild one mount-offering POST per blob, answered 201 for the blobs the registry has). "+
		"crane pushes with `crane push` and adds tags with `crane tag`; skopeo runs one "+
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
	for _, sk := range r.Skipped {
		fmt.Fprintf(&b, "- **%s: not measured**: %s\n", sk.Key, sk.Value)
	}
	if r.shape("archive") != nil || r.shape("daemon") != nil {
		fmt.Fprintln(&b, "## Compression")
		fmt.Fprintln(&b)
		fmt.Fprintln(&b, "Sources that hold their layers uncompressed: a docker-archive written as Docker 20.10's `docker save` writes one "+
			"(three layers of Go toolchain files, FROM scratch + COPY: `go run ./hack/bench -write-archive DIR` writes it), and the same "+
			"image loaded into the Docker engine. export-step: `-source docker-archive:FILE` / `docker-daemon:REF`, and again with "+
			"`-compression zstd`; crane: `crane push FILE` (from the daemon: `docker save -o FILE` then `crane push`, timed together); skopeo: "+
			"`skopeo copy docker-archive:FILE` / `docker-daemon:REF`; floor: the harness reads the source once, compresses each layer with the "+
			"fastest compressor measured below (pgzip level 1, every core), then pushes as the floor does. `stored` is the config and layers "+
			"the registry holds afterwards.")
		fmt.Fprintln(&b)
		compressionTable(&b, r)
		fmt.Fprintln(&b)
	}
	if r.ZstdPull != "" {
		fmt.Fprintf(&b, "zstd: %s.\n\n", strings.TrimSuffix(r.ZstdPull, "."))
	}
	if len(r.Compressors) > 0 {
		fmt.Fprintln(&b, "Compressors on the same layers, in the harness process (best of 3, output counted and discarded; pgzip and zstd use every core on one layer at a time, the single-stream ones compress the layers at once):")
		fmt.Fprintln(&b)
		compressorTable(&b, r)
		fmt.Fprintln(&b)
	}
	if r.shape("rebuild") != nil {
		fmt.Fprintln(&b, "## Rebuild")
		fmt.Fprintln(&b)
		fmt.Fprintln(&b, "The previous build is pushed to the tag first (untimed, same tool); then the build whose last layer changed is pushed to that tag. "+
			"Requests are counted from the registry's access log.")
		fmt.Fprintln(&b)
		rebuildTable(&b, r)
		fmt.Fprintln(&b)
	}
	if len(r.Growth) > 0 {
		fmt.Fprintln(&b, "## How cost grows")
		fmt.Fprintln(&b)
		fmt.Fprintf(&b, "Layers of %d KiB of random bytes, gzip'd, one tag; tags: 3 × 1 MiB. export-step and crane interleaved, fresh registry per run, peak RSS from `/usr/bin/time -v` (crane: the largest of its processes).\n\n", growthLayerSize/kib)
		if r.GrowthChart != "" {
			fmt.Fprintf(&b, "![time and peak RSS against layer and tag count, log-log](%s)\n\n", r.GrowthChart)
		}
		growthTable(&b, r)
		fmt.Fprintln(&b)
	}
	if len(r.Report2Results) > 0 {
		fmt.Fprintln(&b, "report2results on what each kind of builder writes about one image with two tags (IMAGE_DIGEST, IMAGE_URL, IMAGES, ARTIFACT_OUTPUTS; `-offline`), the inputs' runs interleaved:")
		fmt.Fprintln(&b)
		fmt.Fprintln(&b, "| input | runs | min | median | max |")
		fmt.Fprintln(&b, "| --- | ---: | ---: | ---: | ---: |")
		for _, x := range r.Report2Results {
			lo, med, hi := stats(x.Seconds)
			fmt.Fprintf(&b, "| %s | %d | %.1f ms | %.1f ms | %.1f ms |\n", x.Input, len(x.Seconds), lo*1000, med*1000, hi*1000)
		}
		fmt.Fprintln(&b)
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

// compressionTable: the shapes whose source holds layers uncompressed,
// against skopeo (time and bytes stored) and the floor.
func compressionTable(w io.Writer, r results) {
	fmt.Fprintln(w, "| shape | tool | median | median ÷ skopeo | median ÷ floor | stored | stored ÷ skopeo's | peak RSS (max) | digest |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, key := range []string{"archive", "daemon"} {
		s := r.shape(key)
		if s == nil {
			continue
		}
		base := func(tool string) (float64, float64) {
			if t := s.tool(tool); t != nil && len(t.Seconds) > 0 {
				return median(t.Seconds), medianInt(t.StoredBytes)
			}
			return 0, 0
		}
		skSec, skBytes := base(toolSkopeo)
		flSec, _ := base(toolFloor)
		for _, t := range s.Tools {
			if len(t.Seconds) == 0 {
				continue
			}
			med, stored := median(t.Seconds), medianInt(t.StoredBytes)
			ratio := func(v, b float64, f string) string {
				if b == 0 {
					return "–"
				}
				return fmt.Sprintf(f, v/b)
			}
			rss := "–"
			if len(t.RSSKiB) > 0 {
				rss = fmt.Sprintf("%.1f MiB", float64(slices.Max(t.RSSKiB))/1024)
			}
			name := t.Tool
			if strings.HasPrefix(name, toolExport) {
				name = "**" + name + "**"
			}
			fmt.Fprintf(w, "| %s (%s uncompressed) | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Title, fmtMB(float64(s.RawBytes)), name,
				fmtSeconds(med), ratio(med, skSec, "%.2f"), ratio(med, flSec, "%.2f"), fmtMB(stored), ratio(stored, skBytes, "%.3f"), rss, t.Digests)
		}
	}
}

// rebuildTable: the requests of the rebuild shape, by kind (first run),
// and the most any unchanged blob got.
func rebuildTable(w io.Writer, r results) {
	s := r.shape("rebuild")
	if s == nil {
		return
	}
	fmt.Fprintf(w, "%s: %d blobs unchanged (layers and, as the config names the diff IDs, not the config).\n\n", s.Title, len(s.Unchanged))
	fmt.Fprintln(w, "| tool | median | median ÷ floor | requests (first run) | most requests on one unchanged blob (all runs) |")
	fmt.Fprintln(w, "| --- | ---: | ---: | --- | ---: |")
	var floor float64
	if f := s.tool(toolFloor); f != nil {
		floor = median(f.Seconds)
	}
	for _, t := range s.Tools {
		if len(t.Seconds) == 0 || len(t.Requests) == 0 {
			continue
		}
		rel := "–"
		if floor > 0 {
			rel = fmt.Sprintf("%.2f", median(t.Seconds)/floor)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %d: %s | %d |\n", t.Tool, fmtSeconds(median(t.Seconds)), rel,
			t.Requests[0].total(), t.Requests[0], maxPerBlob(t.Requests, s.Unchanged))
	}
}

// compressorTable: every candidate on the toolchain layers.
func compressorTable(w io.Writer, r results) {
	if len(r.Compressors) == 0 {
		return
	}
	var skopeo float64
	for _, c := range r.Compressors {
		if strings.HasPrefix(c.Name, "pgzip 5") {
			skopeo = float64(c.OutBytes)
		}
	}
	fmt.Fprintln(w, "| compressor | time (best) | MB/s in | output | ÷ pgzip 5 (skopeo) |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: |")
	for _, c := range r.Compressors {
		rel := "–"
		if skopeo > 0 {
			rel = fmt.Sprintf("%.3f", float64(c.OutBytes)/skopeo)
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %s | %s |\n", c.Name, fmtSeconds(c.Seconds), float64(c.InBytes)/1e6/c.Seconds, fmtMB(float64(c.OutBytes)), rel)
	}
}

// growthTable: the growth sweep, export-step beside crane.
func growthTable(w io.Writer, r results) {
	if len(r.Growth) == 0 {
		return
	}
	fmt.Fprintln(w, "| sweep | n | export-step median | crane median | export-step ÷ crane | export-step peak RSS | crane peak RSS | runs (export-step, crane) |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	find := func(axis string, n int, tool string) growthPoint {
		for _, q := range r.Growth {
			if q.Axis == axis && q.N == n && q.Tool == tool {
				return q
			}
		}
		return growthPoint{}
	}
	cell := func(p growthPoint) (med, rss string) {
		switch {
		case len(p.Seconds) > 0:
			return fmtSeconds(median(p.Seconds)), fmt.Sprintf("%.1f MiB", float64(slices.Max(p.RSSKiB))/1024)
		case p.KilledAt > 0:
			return fmt.Sprintf("> %s (killed)", fmtSeconds(p.KilledAt)), "–"
		}
		return "not run", "–"
	}
	for _, p := range r.Growth {
		if p.Tool != toolExport {
			continue
		}
		c := find(p.Axis, p.N, toolCrane)
		em, erss := cell(p)
		cm, crss := cell(c)
		rel := "–"
		if len(p.Seconds) > 0 && len(c.Seconds) > 0 {
			rel = fmt.Sprintf("%.2f", median(p.Seconds)/median(c.Seconds))
		} else if len(p.Seconds) > 0 && c.KilledAt > 0 {
			rel = fmt.Sprintf("< %.2f", median(p.Seconds)/c.KilledAt)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %d, %d |\n", p.Axis, p.N, em, cm, rel, erss, crss, len(p.Seconds), len(c.Seconds))
	}
}

// r2rTiming is report2results timed on one kind of input.
type r2rTiming struct {
	Input   string
	Seconds []float64
}
