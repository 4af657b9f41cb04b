package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/exportreport/exportreport/pkg/atomicfile"
)

type config struct {
	quick                  bool
	runs                   int
	out, work, cache, only string
	growthLayers           []int // layer counts of the growth sweep
	growthTags             []int // tag counts of the growth sweep
	growthRuns             int
	growthTimeout          time.Duration // a growth run longer than this is killed
}

// shape is one thing to push, timed for every tool.
type shape struct {
	key, title string
	sizes      []int64 // layer sizes (OCI layout shapes)
	tags       int
	existing   bool // pushed once untimed; the second push is timed
	rebuild    bool // the previous build (one layer other) is pushed untimed to the same tag first
	rss        bool // measure peak RSS with /usr/bin/time -v
	runs       int
	seed       uint64
	// source: "" an OCI layout of gzip'd layers (writeImage); "archive" the
	// toolchain docker-archive, layers uncompressed; "daemon" the same image
	// loaded into the Docker engine.
	source string
	tools  []string // default: export-step, crane, skopeo, floor
}

// changedLayer is the layer of the rebuild shape that differs from the
// previous build's: the last, as an application layer on a base.
func (s shape) changedLayer() int { return len(s.sizes) - 1 }

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

func repeat(n int, size int64) []int64 {
	s := make([]int64, n)
	for i := range s {
		s[i] = size
	}
	return s
}

// compressionTools are the tools of the compression shapes: export-step
// with each -compression, and the others.
var compressionTools = []string{toolExport, toolExportZstd, toolCrane, toolSkopeo, toolFloor}

func shapes(quick bool, runs int) []shape {
	if quick {
		return []shape{
			{key: "large", title: "3 × 4 MiB", sizes: repeat(3, 4*mib), tags: 1, runs: 1, seed: 1},
			{key: "small", title: "10 × 10 KiB", sizes: repeat(10, 10*kib), tags: 1, runs: 1, seed: 2},
			{key: "unchanged", title: "unchanged re-export (3 × 4 MiB)", sizes: repeat(3, 4*mib), tags: 1, existing: true, runs: 1, seed: 1},
			{key: "tag1", title: "1 tag (3 × 1 MiB)", sizes: repeat(3, mib), tags: 1, runs: 1, seed: 3},
			{key: "tag10", title: "10 tags (3 × 1 MiB)", sizes: repeat(3, mib), tags: 10, runs: 1, seed: 3},
			{key: "huge", title: "1 × 64 MiB, peak RSS", sizes: []int64{64 * mib}, tags: 1, rss: true, runs: 1, seed: 4},
			{key: "rebuild", title: "rebuild, 1 of 5 × 1 MiB changed", sizes: repeat(5, mib), tags: 1, rebuild: true, runs: 1, seed: 5},
			{key: "archive", title: "docker-archive, Go toolchain (small)", tags: 1, source: "archive", rss: true, runs: 1, tools: compressionTools},
			{key: "daemon", title: "docker-daemon, Go toolchain (small)", tags: 1, source: "daemon", rss: true, runs: 1, tools: compressionTools},
		}
	}
	return []shape{
		{key: "large", title: "3 × 80 MiB", sizes: repeat(3, 80*mib), tags: 1, runs: runs, seed: 1},
		{key: "small", title: "100 × 10 KiB", sizes: repeat(100, 10*kib), tags: 1, runs: runs, seed: 2},
		{key: "unchanged", title: "unchanged re-export (3 × 80 MiB)", sizes: repeat(3, 80*mib), tags: 1, existing: true, runs: runs, seed: 1},
		{key: "tag1", title: "1 tag (3 × 1 MiB)", sizes: repeat(3, mib), tags: 1, runs: runs, seed: 3},
		{key: "tag10", title: "10 tags (3 × 1 MiB)", sizes: repeat(3, mib), tags: 10, runs: runs, seed: 3},
		{key: "huge", title: "1 × 1 GiB, peak RSS", sizes: []int64{gib}, tags: 1, rss: true, runs: min(runs, 3), seed: 4},
		{key: "rebuild", title: "rebuild, 1 of 20 × 8 MiB changed", sizes: repeat(20, 8*mib), tags: 1, rebuild: true, runs: runs, seed: 5},
		{key: "archive", title: "docker-archive, Go toolchain", tags: 1, source: "archive", rss: true, runs: runs, tools: compressionTools},
		{key: "daemon", title: "docker-daemon, Go toolchain", tags: 1, source: "daemon", rss: true, runs: runs, tools: compressionTools},
	}
}

// tool pushes img to host under the tags and returns the wall time and the
// peak RSS of its processes (0 when not measured).
type tool struct {
	name string
	push func(ctx context.Context, h *harness, host string, img *image, refs []string, rss bool) (time.Duration, int64, error)
}

const (
	toolExport     = "export-step"
	toolExportZstd = "export-step zstd"
	toolCrane      = "crane"
	toolSkopeo     = "skopeo"
	toolFloor      = "floor"
)

var allTools = map[string]tool{
	toolExport:     {toolExport, pushExportStep},
	toolExportZstd: {toolExportZstd, pushExportStepZstd},
	toolCrane:      {toolCrane, pushCrane},
	toolSkopeo:     {toolSkopeo, pushSkopeo},
	toolFloor:      {toolFloor, pushFloor},
}

// tools of the shape, in the order they are listed.
func (s shape) toolList() []tool {
	names := s.tools
	if len(names) == 0 {
		names = []string{toolExport, toolCrane, toolSkopeo, toolFloor}
	}
	var out []tool
	for _, n := range names {
		out = append(out, allTools[n])
	}
	return out
}

type harness struct {
	work, bin      string
	exportStep     string
	report2results string
	crane          string
	env            []string
	client         *http.Client
	jobs           int
}

func run(ctx context.Context, c config) error {
	start := time.Now()
	if c.out == "" && !c.quick {
		c.out = "docs/benchmarks.md"
	}
	if c.work == "" {
		dir, err := os.MkdirTemp("", "exportreport-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		c.work = dir
	}
	if c.cache == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("find a cache directory (set -cache): %w", err)
		}
		c.cache = filepath.Join(base, "exportreport", "bench")
	}
	h := &harness{work: c.work, bin: filepath.Join(c.work, "bin"), jobs: 4,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	res := &results{Date: start.UTC(), Quick: c.quick, Runs: c.runs, Machine: describeMachine()}

	// Built as ko.yaml builds the released images: static (CGO_ENABLED=0,
	// which also spares the dynamic loader's ~1.5 ms at every start),
	// stripped, no build ID.
	slog.Info("building the commands as ko.yaml does", "dir", h.bin)
	buildEnv := append(os.Environ(), "CGO_ENABLED=0")
	for _, cmd := range []string{"export-step", "report2results"} {
		out := filepath.Join(h.bin, cmd)
		if err := execQuiet(ctx, buildEnv, "go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", out, "./cmd/"+cmd); err != nil {
			return fmt.Errorf("build %s (run from the repository root): %w", cmd, err)
		}
		fi, err := os.Stat(out)
		if err != nil {
			return err
		}
		res.Binaries = append(res.Binaries, binarySize{Name: cmd, Bytes: fi.Size()})
	}
	h.exportStep, h.report2results = filepath.Join(h.bin, "export-step"), filepath.Join(h.bin, "report2results")
	crane, err := installCrane(ctx, c.cache)
	if err != nil {
		return err
	}
	h.crane = crane
	dockerConfig := filepath.Join(c.work, "docker-config")
	if err := os.MkdirAll(dockerConfig, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dockerConfig, "config.json"), []byte("{}"), 0o644); err != nil {
		return err
	}
	h.env = append(os.Environ(), "DOCKER_CONFIG="+dockerConfig)
	res.Versions = versions(ctx, h)

	sources := &sourceCache{work: c.work, quick: c.quick, layouts: map[string]*image{}}
	defer sources.cleanup(ctx)
	for _, s := range shapes(c.quick, c.runs) {
		if c.only != "" && !strings.Contains(s.key, c.only) {
			continue
		}
		img, prev, err := sources.get(ctx, s)
		if err != nil {
			if errors.Is(err, errNoDocker) {
				slog.Warn("shape skipped", "shape", s.title, "err", err)
				res.Skipped = append(res.Skipped, keyValue{s.title, err.Error()})
				continue
			}
			return fmt.Errorf("source for %s: %w", s.title, err)
		}
		tools := s.toolList()
		sr := shapeResult{Key: s.key, Title: s.title, RawBytes: img.rawBytes}
		if prev != nil {
			for _, b := range img.blobs {
				if slices.ContainsFunc(prev.blobs, func(p descriptor) bool { return p.Digest == b.Digest }) {
					sr.Unchanged = append(sr.Unchanged, b.Digest)
				}
			}
		}
		for _, t := range tools {
			sr.Tools = append(sr.Tools, toolResult{Tool: t.name})
		}
		for i := range s.runs {
			// Interleaved: every run times every tool, starting with a
			// different one each time.
			for j := range tools {
				k := (i + j) % len(tools)
				m, err := runOnce(ctx, h, s, tools[k], img, prev)
				if err != nil {
					return fmt.Errorf("%s, %s, run %d: %w", s.title, tools[k].name, i+1, err)
				}
				slog.Info("timed", "shape", s.title, "tool", tools[k].name, "run", i+1, "seconds", m.d.Seconds(), "rss_kib", m.rss, "stored", m.stored, "requests", m.requests.total())
				tr := &sr.Tools[k]
				tr.Seconds = append(tr.Seconds, m.d.Seconds())
				if m.rss > 0 {
					tr.RSSKiB = append(tr.RSSKiB, m.rss)
				}
				tr.StoredBytes = append(tr.StoredBytes, m.stored)
				tr.Requests = append(tr.Requests, m.requests)
				if tr.Digest == "" {
					tr.Digest = m.digest
				} else if tr.Digest != m.digest {
					tr.Digests = "differ between runs"
				}
			}
		}
		for k := range sr.Tools {
			if sr.Tools[k].Digests == "" {
				sr.Tools[k].Digests = "same in every run"
			}
		}
		res.Shapes = append(res.Shapes, sr)
	}
	if c.only == "" || strings.Contains("compressors", c.only) {
		tc, err := sources.toolchain()
		if err != nil {
			return err
		}
		slog.Info("measuring the compressors on the toolchain layers")
		if res.Compressors, err = measureCompressors(tc.layers, map[bool]int{true: 1, false: 3}[c.quick]); err != nil {
			return err
		}
	}
	if c.only == "" || strings.Contains("zstd-pull", c.only) || strings.Contains(c.only, "daemon") {
		switch res.ZstdPull, err = zstdPull(ctx, h); {
		case errors.Is(err, errNoDocker):
			res.ZstdPull = "not measured: " + err.Error()
		case err != nil:
			return fmt.Errorf("zstd pull: %w", err)
		}
		slog.Info("zstd pull", "outcome", res.ZstdPull)
	}
	if c.only == "" || strings.Contains("growth", c.only) {
		if res.Growth, err = runGrowth(ctx, h, c); err != nil {
			return err
		}
	}
	if c.only == "" || strings.Contains("report2results", c.only) {
		r2r, err := timeReport2Results(ctx, h, map[bool]int{true: 3, false: 20}[c.quick])
		if err != nil {
			return err
		}
		res.Report2Results = r2r
	}
	if c.only == "" || strings.Contains("gobench", c.only) {
		slog.Info("running the Go benchmarks", "packages", goBenchPackages)
		gb, err := runGoBenchmarks(ctx, map[bool]string{true: "3x", false: "1s"}[c.quick])
		if err != nil {
			return err
		}
		res.GoBenchmarks = gb
	}
	res.Machine.LoadEnd = loadAverage()
	res.Elapsed = time.Since(start).Round(time.Second)
	printSummary(os.Stdout, *res)
	if c.out == "" {
		return nil
	}
	png := strings.TrimSuffix(c.out, ".md") + ".png"
	if len(res.Shapes) > 0 {
		if err := writeChart(*res, png); err != nil {
			return fmt.Errorf("write %s: %w", png, err)
		}
	}
	growthPNG := strings.TrimSuffix(c.out, ".md") + "-growth.png"
	if len(res.Growth) > 0 {
		if err := writeGrowthChart(res.Growth, growthPNG); err != nil {
			return fmt.Errorf("write %s: %w", growthPNG, err)
		}
		res.GrowthChart = filepath.Base(growthPNG)
	}
	previous, err := os.ReadFile(c.out)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := atomicfile.WriteFile(c.out, []byte(renderMarkdown(*res, filepath.Base(png), previous)), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", c.out, err)
	}
	slog.Info("wrote", "report", c.out, "chart", png)
	return nil
}

// measurement is one timed push of one tool.
type measurement struct {
	d        time.Duration
	rss      int64  // KiB, 0 when not measured
	stored   int64  // bytes of the image in the registry: config and layers
	digest   string // of the first tag
	requests requestCount
}

// runOnce starts a fresh registry, pre-pushes for an unchanged re-export or a
// rebuild, times one push and checks the registry holds the image under
// every tag: for OCI layout shapes, the layout's digest, whatever the tool
// (they all push the same bytes).
func runOnce(ctx context.Context, h *harness, s shape, t tool, img, prev *image) (measurement, error) {
	var m measurement
	reg, err := startRegistry(ctx, h.work)
	if err != nil {
		return m, err
	}
	defer reg.stop()
	refs := make([]string, s.tags)
	for i := range refs {
		refs[i] = fmt.Sprintf("%s/bench/%s:t%d", reg.host, s.key, i+1)
	}
	switch {
	case s.existing:
		if _, _, err := t.push(ctx, h, reg.host, img, refs, false); err != nil {
			return m, fmt.Errorf("first push: %w", err)
		}
	case s.rebuild:
		if _, _, err := t.push(ctx, h, reg.host, prev, refs, false); err != nil {
			return m, fmt.Errorf("push of the previous build: %w", err)
		}
		if got, err := headManifest(ctx, h.client, reg.host, "bench/"+s.key, "t1"); err != nil || got != prev.digest {
			return m, fmt.Errorf("previous build: tag t1 has %q (%v), want %s", got, err, prev.digest)
		}
	}
	logStart := reg.logSize()
	m.d, m.rss, err = t.push(ctx, h, reg.host, img, refs, s.rss)
	if err != nil {
		return m, err
	}
	if m.requests, err = reg.countRequests(logStart); err != nil {
		return m, err
	}
	// Every tag is there.
	for i := range refs {
		got, err := headManifest(ctx, h.client, reg.host, "bench/"+s.key, fmt.Sprintf("t%d", i+1))
		if err != nil {
			return m, fmt.Errorf("check the pushed image: %w", err)
		}
		if img.digest != "" && got != img.digest {
			return m, fmt.Errorf("check the pushed image: tag t%d has digest %s, the layout %s", i+1, got, img.digest)
		}
		if i == 0 {
			m.digest = got
		}
	}
	if m.stored, err = storedBytes(ctx, h.client, reg.host, "bench/"+s.key, "t1"); err != nil {
		return m, fmt.Errorf("check the pushed image: %w", err)
	}
	return m, nil
}

// source is what a tool reads, as its -source (or crane's path) argument.
func (img *image) source() string {
	switch {
	case img.archive != "":
		return "docker-archive:" + img.archive
	case img.daemonRef != "":
		return "docker-daemon:" + img.daemonRef
	}
	return "oci:" + img.dir
}

func pushExportStep(ctx context.Context, h *harness, host string, img *image, refs []string, rss bool) (time.Duration, int64, error) {
	args := []string{h.exportStep, "-quiet", "-source", img.source(), "-insecure-registry", host,
		"-jobs", strconv.Itoa(h.jobs), "-report", filepath.Join(h.work, "report.toml")}
	return timeCommands(ctx, h.env, rss, append(args, refs...))
}

func pushExportStepZstd(ctx context.Context, h *harness, host string, img *image, refs []string, rss bool) (time.Duration, int64, error) {
	args := []string{h.exportStep, "-quiet", "-compression", "zstd", "-source", img.source(), "-insecure-registry", host,
		"-jobs", strconv.Itoa(h.jobs), "-report", filepath.Join(h.work, "report.toml")}
	return timeCommands(ctx, h.env, rss, append(args, refs...))
}

// pushCrane: crane push reads an OCI layout or a docker-archive; from the
// daemon, `docker save` to a file first (timed: that is how one does it).
func pushCrane(ctx context.Context, h *harness, host string, img *image, refs []string, rss bool) (time.Duration, int64, error) {
	path := img.dir
	var cmds [][]string
	switch {
	case img.archive != "":
		path = img.archive
	case img.daemonRef != "":
		path = filepath.Join(h.work, "crane-save.tar")
		defer os.Remove(path)
		cmds = append(cmds, []string{"docker", "save", "-o", path, img.daemonRef})
	}
	cmds = append(cmds, []string{h.crane, "push", "--insecure", path, refs[0]})
	for _, r := range refs[1:] {
		cmds = append(cmds, []string{h.crane, "tag", "--insecure", refs[0], r[strings.LastIndex(r, ":")+1:]})
	}
	return timeCommands(ctx, h.env, rss, cmds...)
}

func pushSkopeo(ctx context.Context, h *harness, host string, img *image, refs []string, rss bool) (time.Duration, int64, error) {
	var cmds [][]string
	for _, r := range refs {
		args := []string{"skopeo", "--insecure-policy", "copy", "-q", "--dest-tls-verify=false"}
		if host := os.Getenv("DOCKER_HOST"); img.daemonRef != "" && host != "" {
			args = append(args, "--src-daemon-host", host) // skopeo does not read DOCKER_HOST
		}
		cmds = append(cmds, append(args, img.source(), "docker://"+r))
	}
	return timeCommands(ctx, h.env, rss, cmds...)
}

// pushFloor runs the harness itself (-floor-push) as the floor, a process
// like the tools, so that process start counts the same for all. For the
// compression shapes the floor reads the source once, compresses with the
// fastest compressor measured (floorCompress) and pushes.
func pushFloor(ctx context.Context, h *harness, host string, img *image, refs []string, rss bool) (time.Duration, int64, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	src := img.dir
	if img.archive != "" || img.daemonRef != "" {
		src = img.source()
	}
	return timeCommands(ctx, h.env, rss, append([]string{self, "-floor-push", src}, refs...))
}

// timeCommands runs the commands one after another and returns their total
// wall time and, with rss, the largest peak RSS among them.
func timeCommands(ctx context.Context, env []string, rss bool, cmds ...[]string) (time.Duration, int64, error) {
	var total time.Duration
	var peak int64
	for _, args := range cmds {
		var rssFile string
		if rss {
			rssFile = filepath.Join(os.TempDir(), fmt.Sprintf("bench-rss-%d", os.Getpid()))
			args = append([]string{"/usr/bin/time", "-v", "-o", rssFile}, args...)
		}
		start := time.Now()
		err := execQuiet(ctx, env, args[0], args[1:]...)
		total += time.Since(start)
		if err != nil {
			return 0, 0, err
		}
		if rss {
			kb, err := maxRSS(rssFile)
			os.Remove(rssFile)
			if err != nil {
				return 0, 0, err
			}
			peak = max(peak, kb)
		}
	}
	return total, peak, nil
}

// maxRSS reads "Maximum resident set size (kbytes)" from /usr/bin/time -v.
func maxRSS(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Maximum resident set size (kbytes):"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no maximum resident set size", path)
}

// execQuiet runs a command; when ctx ends, the command's whole process
// group is killed (the tool under /usr/bin/time too).
func execQuiet(ctx context.Context, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return nil
}

func installCrane(ctx context.Context, cache string) (string, error) {
	bin := filepath.Join(cache, "bin")
	crane := filepath.Join(bin, "crane")
	if out, err := exec.CommandContext(ctx, crane, "version").Output(); err == nil && strings.TrimSpace(string(out)) == craneVersion {
		return crane, nil
	}
	slog.Info("installing crane", "version", craneVersion, "dir", bin)
	env := append(os.Environ(), "GOBIN="+bin)
	if err := execQuiet(ctx, env, "go", "install", "github.com/google/go-containerregistry/cmd/crane@"+craneVersion); err != nil {
		return "", fmt.Errorf("install crane: %w", err)
	}
	return crane, nil
}

const craneVersion = "v0.22.1"

const (
	benchDigest   = "sha256:4d3c1c2b0f4fbd3f4f0b8a5c6e0c8f2a6b7e1d9c3a5b7d9e1f3a5c7e9b1d3f5a"
	typicalReport = `[image]
tags = ["registry.example.com/team/app:latest", "registry.example.com/team/app:1.4.2"]
digest = "` + benchDigest + `"
manifest_size = 1234
media_type = "application/vnd.oci.image.index.v1+json"
`
)

// r2rInput is one input report2results is timed on: its file (written
// into the work directory) and its flags, given that directory.
type r2rInput struct {
	name string
	file string // "" for none (a layout, or a file an earlier input wrote)
	data string
	args func(dir string) []string
}

// r2rInputs are what each kind of builder writes about one image pushed as
// registry.example.com/team/app (two tags), as in pkg/pushed's fixtures.
var r2rInputs = []r2rInput{
	{"report, with an OCI layout", "report.toml", typicalReport, func(d string) []string {
		return []string{"-from", "report:" + filepath.Join(d, "report.toml"), "-oci-layout", filepath.Join(d, "layout")}
	}},
	{"report", "", "", func(d string) []string { return []string{"-from", "report:" + filepath.Join(d, "report.toml")} }},
	{"refs (ko, crane, kaniko)", "refs", "registry.example.com/team/app:latest@" + benchDigest + "\nregistry.example.com/team/app:1.4.2@" + benchDigest + "\n",
		func(d string) []string { return []string{"-from", "refs:" + filepath.Join(d, "refs")} }},
	{"digest (kaniko, buildah, podman)", "digest", benchDigest, func(d string) []string {
		return []string{"-from", "digest:" + filepath.Join(d, "digest"), "-image", "registry.example.com/team/app:latest"}
	}},
	{"buildx", "buildx.json", `{"containerimage.digest":"` + benchDigest + `","image.name":"registry.example.com/team/app:latest,registry.example.com/team/app:1.4.2"}`,
		func(d string) []string { return []string{"-from", "buildx:" + filepath.Join(d, "buildx.json")} }},
	{"jib", "jib-image.json", `{"image":"registry.example.com/team/app:latest","imageDigest":"` + benchDigest + `","tags":["latest","1.4.2"]}`,
		func(d string) []string { return []string{"-from", "jib:" + filepath.Join(d, "jib-image.json")} }},
	{"auto (the buildx file)", "", "", func(d string) []string { return []string{"-from", "auto:" + filepath.Join(d, "buildx.json")} }},
	{"oci-layout (one image)", "", "", func(d string) []string {
		return []string{"-from", "oci-layout:" + filepath.Join(d, "oci"), "-image", "registry.example.com/team/app:latest"}
	}},
}

// timeReport2Results runs report2results n times on what each kind of
// builder writes, offline, writing IMAGE_DIGEST, IMAGE_URL, IMAGES and
// ARTIFACT_OUTPUTS (and, for the first input, an OCI layout), the inputs'
// runs interleaved.
func timeReport2Results(ctx context.Context, h *harness, n int) ([]r2rTiming, error) {
	dir := filepath.Join(h.work, "report2results")
	if err := os.MkdirAll(filepath.Join(dir, "results"), 0o755); err != nil {
		return nil, err
	}
	for _, in := range r2rInputs {
		if in.file != "" {
			if err := os.WriteFile(filepath.Join(dir, in.file), []byte(in.data), 0o644); err != nil {
				return nil, err
			}
		}
	}
	if _, err := writeImage(filepath.Join(dir, "oci"), []int64{1024}, 1, -1); err != nil {
		return nil, err
	}
	out := make([]r2rTiming, len(r2rInputs))
	for range n {
		for i, in := range r2rInputs {
			args := append([]string{h.report2results, "-results-dir", filepath.Join(dir, "results"),
				"-results", "IMAGE_DIGEST,IMAGE_URL,IMAGES,ARTIFACT_OUTPUTS", "-offline", "-quiet"}, in.args(dir)...)
			d, _, err := timeCommands(ctx, h.env, false, args)
			if err != nil {
				return nil, fmt.Errorf("report2results on %s: %w", in.name, err)
			}
			out[i].Input = in.name
			out[i].Seconds = append(out[i].Seconds, d.Seconds())
		}
	}
	return out, nil
}

func versions(ctx context.Context, h *harness) []keyValue {
	first := func(name string, args ...string) string {
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			return "unknown (" + err.Error() + ")"
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return line
	}
	rev := first("git", "rev-parse", "--short", "HEAD")
	if out, _ := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); len(out) > 0 {
		rev += " (with local changes)"
	}
	return []keyValue{
		{"export-step, report2results", "this repository at " + rev},
		{"Go", runtime.Version()},
		{"crane", first(h.crane, "version")},
		{"skopeo", first("skopeo", "--version")},
		{"registry", first(registryBinary, "--version")},
	}
}

func describeMachine() machine {
	m := machine{Cores: runtime.NumCPU(), LoadStart: loadAverage()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
		m.MemGiB = float64(kb) / (1 << 20)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
