package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"
)

// fakeResults are made-up measurements: enough to exercise every table row,
// target and bar.
func fakeResults() results {
	tools := func(export, crane, skopeo, floor []float64) []toolResult {
		return []toolResult{
			{Tool: toolExport, Seconds: export},
			{Tool: toolCrane, Seconds: crane},
			{Tool: toolSkopeo, Seconds: skopeo},
			{Tool: toolFloor, Seconds: floor},
		}
	}
	huge := tools([]float64{9}, []float64{10}, []float64{20}, []float64{8})
	huge[0].RSSKiB, huge[1].RSSKiB, huge[2].RSSKiB = []int64{30 << 10}, []int64{20 << 10}, []int64{80 << 10}
	unchanged := []string{"sha256:aa", "sha256:bb"}
	reqs := func(perBlob int, kinds map[string]int) []requestCount {
		return []requestCount{{Kinds: kinds, PerBlob: map[string]int{"sha256:aa": perBlob, "sha256:bb": 1, "sha256:cc": 3}}}
	}
	rebuild := tools([]float64{1.05}, []float64{1.2}, []float64{2}, []float64{1})
	rebuild[0].Requests = reqs(1, map[string]int{"ping": 1, "blob HEAD": 3, "blob POST": 2, "blob PUT": 2, "manifest HEAD": 1, "manifest PUT": 1})
	rebuild[1].Requests = reqs(2, map[string]int{"ping": 1, "blob HEAD": 3, "blob POST": 1, "blob PATCH": 1, "blob PUT": 1, "manifest PUT": 1})
	rebuild[3].Requests = reqs(1, map[string]int{"blob POST": 3, "blob PUT": 1, "manifest HEAD": 1, "manifest PUT": 1})
	archive := []toolResult{
		{Tool: toolExport, Seconds: []float64{1.3, 1.4}, StoredBytes: []int64{60e6, 60e6}, RSSKiB: []int64{60 << 10}, Digests: "same in every run"},
		{Tool: toolExportZstd, Seconds: []float64{1.2}, StoredBytes: []int64{53e6}, RSSKiB: []int64{70 << 10}, Digests: "same in every run"},
		{Tool: toolCrane, Seconds: []float64{5.5}, StoredBytes: []int64{65e6}, RSSKiB: []int64{20 << 10}, Digests: "same in every run"},
		{Tool: toolSkopeo, Seconds: []float64{2.1}, StoredBytes: []int64{58e6}, RSSKiB: []int64{75 << 10}, Digests: "same in every run"},
		{Tool: toolFloor, Seconds: []float64{1.0}, StoredBytes: []int64{65e6}, RSSKiB: []int64{50 << 10}, Digests: "differ between runs"},
	}
	return results{
		Date:     time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC),
		Runs:     3,
		Elapsed:  5 * time.Minute,
		Machine:  machine{CPU: "Fake CPU", Cores: 2, MemGiB: 4, Kernel: "6.1.0", LoadStart: "0.10 0.20 0.30", LoadEnd: "1.00 0.50 0.40"},
		Versions: []keyValue{{"Go", "go1.26.8"}},
		Shapes: []shapeResult{
			{Key: "large", Title: "3 × 80 MiB", Tools: tools([]float64{2, 1, 3}, []float64{1, 2, 3}, []float64{4, 5, 6}, []float64{1.9, 2, 2.1})},
			{Key: "small", Title: "100 × 10 KiB", Tools: tools([]float64{0.5, 0.6}, []float64{1, 1.2}, []float64{3}, []float64{0.5})},
			{Key: "unchanged", Title: "unchanged", Tools: tools([]float64{0.2}, []float64{0.1}, []float64{0.3}, []float64{0.01})},
			{Key: "tag1", Title: "1 tag", Tools: tools([]float64{0.1}, []float64{0.2}, []float64{0.3}, []float64{0.1})},
			{Key: "tag10", Title: "10 tags", Tools: tools([]float64{0.11}, []float64{0.5}, []float64{1}, []float64{0.12})},
			{Key: "huge", Title: "1 GiB", Tools: huge},
			{Key: "rebuild", Title: "rebuild", Tools: rebuild, Unchanged: unchanged},
			{Key: "archive", Title: "docker-archive", Tools: archive, RawBytes: 201e6},
		},
		Skipped:     []keyValue{{"docker-daemon", "no Docker engine"}},
		Compressors: []compressorResult{{"pgzip 1 (the floor)", 1, 200e6, 65e6}, {"pgzip 5 (skopeo)", 2, 200e6, 58e6}},
		Growth: []growthPoint{
			{Axis: "layers", N: 1, Tool: toolExport, Seconds: []float64{0.1}, RSSKiB: []int64{10 << 10}},
			{Axis: "layers", N: 1, Tool: toolCrane, Seconds: []float64{0.08}, RSSKiB: []int64{14 << 10}},
			{Axis: "layers", N: 100, Tool: toolExport, Seconds: []float64{1}, RSSKiB: []int64{14 << 10}},
			{Axis: "layers", N: 100, Tool: toolCrane, Seconds: []float64{1.5}, RSSKiB: []int64{18 << 10}},
			{Axis: "layers", N: 10000, Tool: toolExport, Seconds: []float64{75}, RSSKiB: []int64{37 << 10}},
			{Axis: "layers", N: 10000, Tool: toolCrane, KilledAt: 600},
			{Axis: "tags", N: 1, Tool: toolExport, Seconds: []float64{0.1}, RSSKiB: []int64{10 << 10}},
			{Axis: "tags", N: 1, Tool: toolCrane, Seconds: []float64{0.1}, RSSKiB: []int64{13 << 10}},
			{Axis: "tags", N: 10, Tool: toolExport, Seconds: []float64{0.11}, RSSKiB: []int64{11 << 10}},
			{Axis: "tags", N: 10, Tool: toolCrane, Seconds: []float64{0.4}, RSSKiB: []int64{14 << 10}},
		},
		GrowthChart:    "benchmarks-growth.png",
		ZstdPull:       "Docker 20.10, `docker pull`: failed: invalid tar header",
		Report2Results: []r2rTiming{{"report", []float64{0.004, 0.003, 0.010}}, {"refs", []float64{0.003, 0.003}}},
		Binaries:       []binarySize{{"export-step", 11_000_000}, {"report2results", 13_000_000}},
		GoBenchmarks:   []goBench{{"results Run/fsync=false", 1.8e6, 24311, 312}, {"layout Index/build-2-tags", 12214, 4999, 60}},
	}
}

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
pkg: github.com/exportreport/exportreport/pkg/results
BenchmarkRun/fsync=false-2         	     300	   1842771 ns/op	   24311 B/op	     312 allocs/op
PASS
pkg: github.com/exportreport/exportreport/pkg/layout
BenchmarkIndex/build-2-tags-2         	     200	     12214 ns/op	    4999 B/op	      60 allocs/op
BenchmarkNoMem-2 	 10	 55.5 ns/op
ok  	github.com/exportreport/exportreport/pkg/layout	6.439s
`
	assert.DeepEqual(t, parseGoBench(strings.NewReader(out)), []goBench{
		{"results Run/fsync=false", 1842771, 24311, 312},
		{"layout Index/build-2-tags", 12214, 4999, 60},
		{"layout NoMem", 55.5, 0, 0},
	})
}

func TestStats(t *testing.T) {
	for _, tc := range []struct {
		in          []float64
		lo, med, hi float64
	}{
		{nil, 0, 0, 0},
		{[]float64{3}, 3, 3, 3},
		{[]float64{3, 1, 2}, 1, 2, 3},
		{[]float64{4, 1, 3, 2}, 1, 2.5, 4},
	} {
		lo, med, hi := stats(tc.in)
		assert.DeepEqual(t, []float64{lo, med, hi}, []float64{tc.lo, tc.med, tc.hi})
	}
}

func TestTargets(t *testing.T) {
	got := map[string]target{}
	for _, tg := range targets(fakeResults()) {
		got[tg.Goal] = tg
	}
	for _, tc := range []struct {
		goal     string
		measured string
		met      bool
	}{
		{"3 × 80 MiB: export-step ≤ 1.05 × crane", "1.00 ×", true},
		{"3 × 80 MiB: export-step ≤ 1.05 × the floor", "1.00 ×", true},
		{"100 × 10 KiB: export-step ≤ 0.6 × crane", "0.50 ×", true},
		{"3 × 80 MiB: export-step ≤ 0.5 × skopeo", "0.40 ×", true},
		{"unchanged: export-step ≤ 0.5 × skopeo", "0.67 ×", false},
		{"unchanged re-export: export-step ≤ 150 ms", "200 ms", false},
		{"10 tags: export-step ≤ 1.2 × one tag", "1.10 ×", true},
		{"1 GiB: export-step peak RSS ≤ 64 MiB", "30.0 MiB (max of runs)", true},
		{"report2results ≤ 5 ms per run, any input", "4.0 ms (median; slowest input: report)", true},
		{"docker-archive: export-step ≤ 0.7 × skopeo", "0.64 ×", true},
		{"docker-archive: export-step stores ≤ 1.05 × skopeo's bytes", "1.034 ×", true},
		{"rebuild: export-step ≤ 1.1 × the floor", "1.05 ×", true},
		{"rebuild: export-step ≤ 1 request per unchanged blob", "at most 1 (2 blobs, every run)", true},
		{"export-step ≤ 12 MB stripped", "11.0 MB", true},
		{"report2results ≤ 12 MB stripped", "13.0 MB", false},
	} {
		tg, ok := got[tc.goal]
		assert.Assert(t, ok, "no target %q", tc.goal)
		assert.Check(t, tg.Known, tc.goal)
		assert.Check(t, tg.Measured == tc.measured, "%s: measured %q, want %q", tc.goal, tg.Measured, tc.measured)
		assert.Check(t, tg.Met == tc.met, "%s: met %v", tc.goal, tg.Met)
	}
}

func TestTargetsNotMeasured(t *testing.T) {
	for _, tg := range targets(results{}) {
		assert.Check(t, !tg.Known, tg.Goal)
	}
}

func TestRenderMarkdown(t *testing.T) {
	previous := []byte("old tables\n" + analysisMarker + "\n## Analysis\n\nkept by hand\n")
	golden.Assert(t, renderMarkdown(fakeResults(), "benchmarks.png", previous), "benchmarks.golden")
}

func TestWriteChart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chart.png")
	assert.NilError(t, writeChart(fakeResults(), path))
	f, err := os.Open(path)
	assert.NilError(t, err)
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	assert.NilError(t, err)
	assert.Check(t, cfg.Width > 500 && cfg.Height > 200, "%dx%d", cfg.Width, cfg.Height)

	assert.ErrorContains(t, writeChart(results{}, path), "no shape has crane timings")
}

func TestWriteGrowthChart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "growth.png")
	assert.NilError(t, writeGrowthChart(fakeResults().Growth, path))
	f, err := os.Open(path)
	assert.NilError(t, err)
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	assert.NilError(t, err)
	assert.Check(t, cfg.Width > 500 && cfg.Height > 500, "%dx%d", cfg.Width, cfg.Height)
	assert.ErrorContains(t, writeGrowthChart(nil, path), "no growth points")
}

func TestParseCounts(t *testing.T) {
	got, err := parseCounts("1, 10,100")
	assert.NilError(t, err)
	assert.DeepEqual(t, got, []int{1, 10, 100})
	for _, bad := range []string{"0", "1,,2", "x", "-3"} {
		_, err := parseCounts(bad)
		assert.ErrorContains(t, err, "want positive integers", bad)
	}
}

func TestRequestKind(t *testing.T) {
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/v2/", "ping"},
		{"HEAD", "/v2/a/b/blobs/sha256:ab", "blob HEAD"},
		{"POST", "/v2/a/blobs/uploads/?mount=sha256%3Aab&from=a", "blob POST"},
		{"PATCH", "/v2/a/blobs/uploads/uuid", "blob PATCH"},
		{"PUT", "/v2/a/blobs/uploads/uuid?digest=sha256%3Aab", "blob PUT"},
		{"PUT", "/v2/a/manifests/t1", "manifest PUT"},
		{"HEAD", "/v2/a/manifests/t1", "manifest HEAD"},
		{"DELETE", "/v2/a/manifests/t1", "other"},
	} {
		assert.Equal(t, requestKind(tc.method, tc.path), tc.want, "%s %s", tc.method, tc.path)
	}
}

func TestPowerOfTwoTicks(t *testing.T) {
	labels := func(lo, hi float64) []string {
		var out []string
		for _, tk := range (powerOfTwoTicks{}).Ticks(lo, hi) {
			out = append(out, tk.Label)
		}
		return out
	}
	assert.DeepEqual(t, labels(10.9, 37.9), []string{"16", "32"})
	assert.DeepEqual(t, labels(11.2, 14), []string{"12", "13", "14"})
}
