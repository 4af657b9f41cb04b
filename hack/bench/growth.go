package main

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// How cost grows (issue 14, item 5): time and peak RSS of export-step and
// crane against the layer count (layers of growthLayerSize random bytes,
// gzip'd, one tag) and the tag count (3 × 1 MiB, like the tag shapes).

const growthLayerSize = 4 * kib

// growthPoint is one size of one sweep, for one tool.
type growthPoint struct {
	Axis     string // "layers" or "tags"
	N        int
	Tool     string
	Seconds  []float64
	RSSKiB   []int64
	KilledAt float64 // seconds: a run was killed after the growth timeout (no timings then)
}

var growthTools = []string{toolExport, toolCrane}

func runGrowth(ctx context.Context, h *harness, c config) ([]growthPoint, error) {
	sources := &sourceCache{work: c.work, layouts: map[string]*image{}}
	var out []growthPoint
	sweep := func(axis string, ns []int, mk func(n int) shape) error {
		killed := map[string]bool{} // tools killed at a smaller size
		for _, n := range ns {
			s := mk(n)
			img, _, err := sources.get(ctx, s)
			if err != nil {
				return err
			}
			points := make([]growthPoint, len(growthTools))
			for k := range points {
				points[k].Axis, points[k].N, points[k].Tool = axis, n, growthTools[k]
			}
			for i := range c.growthRuns {
				for j := range growthTools {
					k := (i + j) % len(growthTools)
					t := allTools[growthTools[k]]
					p := &points[k]
					if killed[t.name] {
						continue
					}
					rctx, cancel := context.WithTimeout(ctx, c.growthTimeout)
					m, err := runOnce(rctx, h, s, t, img, nil)
					timedOut := errors.Is(rctx.Err(), context.DeadlineExceeded)
					cancel()
					if timedOut {
						slog.Warn("killed", "shape", s.title, "tool", t.name, "run", i+1, "after", c.growthTimeout)
						killed[t.name], p.KilledAt = true, c.growthTimeout.Seconds()
						continue
					}
					if err != nil {
						return fmt.Errorf("growth %d %s, %s, run %d: %w", n, axis, t.name, i+1, err)
					}
					slog.Info("timed", "shape", s.title, "tool", t.name, "run", i+1, "seconds", m.d.Seconds(), "rss_kib", m.rss)
					p.Seconds = append(p.Seconds, m.d.Seconds())
					p.RSSKiB = append(p.RSSKiB, m.rss)
				}
			}
			out = append(out, points...)
			// The layouts of the sweep are large in files; one at a time.
			for k, img := range sources.layouts {
				os.RemoveAll(img.dir)
				delete(sources.layouts, k)
			}
		}
		return nil
	}
	err := sweep("layers", c.growthLayers, func(n int) shape {
		return shape{key: "growth-layers", title: fmt.Sprintf("%d layers", n), sizes: repeat(n, growthLayerSize), tags: 1, rss: true, seed: 1000 + uint64(n)}
	})
	if err != nil {
		return nil, err
	}
	err = sweep("tags", c.growthTags, func(n int) shape {
		return shape{key: "growth-tags", title: fmt.Sprintf("%d tags", n), sizes: repeat(3, mib), tags: n, rss: true, seed: 3}
	})
	return out, err
}

// parseCounts reads a comma-separated list of positive integers.
func parseCounts(s string) ([]int, error) {
	var out []int
	if s == "" {
		return nil, nil
	}
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want positive integers separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func medianInt(v []int64) float64 {
	f := make([]float64, len(v))
	for i, x := range v {
		f[i] = float64(x)
	}
	return median(f)
}

// writeGrowthChart draws time and peak RSS against layer count and tag
// count, log-log, one line per tool.
func writeGrowthChart(points []growthPoint, path string) error {
	colors := map[string]color.Color{}
	for _, t := range chartTools {
		colors[t.name] = t.color
	}
	panel := func(axis, what string) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = what + " against " + axis + " (log-log)"
		p.X.Label.Text = axis
		p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
		p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
		if what == "time" {
			p.Y.Label.Text = "median wall time (s)"
		} else {
			p.Y.Label.Text = "peak RSS (MiB, max of runs)"
			p.Y.Tick.Marker = powerOfTwoTicks{} // RSS spans less than a decade
		}
		for _, tool := range growthTools {
			var xys, killed plotter.XYs
			for _, pt := range points {
				if pt.Axis == axis && pt.Tool == tool && pt.KilledAt > 0 && what == "time" {
					killed = append(killed, plotter.XY{X: float64(pt.N), Y: pt.KilledAt})
				}
				if pt.Axis != axis || pt.Tool != tool || len(pt.Seconds) == 0 {
					continue
				}
				y := median(pt.Seconds)
				if what != "time" {
					y = float64(slices.Max(pt.RSSKiB)) / 1024
				}
				xys = append(xys, plotter.XY{X: float64(pt.N), Y: y})
			}
			if len(xys) == 0 {
				continue
			}
			l, s, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, err
			}
			l.Color, s.Color = colors[tool], colors[tool]
			p.Add(l, s)
			p.Legend.Add(tool, l, s)
			if len(killed) > 0 {
				k, err := plotter.NewScatter(killed)
				if err != nil {
					return nil, err
				}
				k.Color, k.Shape, k.Radius = colors[tool], draw.PyramidGlyph{}, vg.Points(5)
				p.Add(k)
				p.Legend.Add(tool+": killed at the time limit (more)", k)
			}
		}
		p.Legend.Top, p.Legend.Left = what == "time", what == "time" // RSS: bottom right, clear of the lines
		return p, nil
	}
	var rows [][]*plot.Plot
	for _, axis := range []string{"layers", "tags"} {
		if !slices.ContainsFunc(points, func(p growthPoint) bool { return p.Axis == axis }) {
			continue
		}
		var row []*plot.Plot
		for _, what := range []string{"time", "peak RSS"} {
			p, err := panel(axis, what)
			if err != nil {
				return err
			}
			row = append(row, p)
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return fmt.Errorf("no growth points to draw")
	}
	img := vgimg.New(11*vg.Inch, vg.Length(len(rows))*4*vg.Inch)
	dc := draw.New(img)
	t := draw.Tiles{Rows: len(rows), Cols: 2, PadX: vg.Inch / 4, PadY: vg.Inch / 4,
		PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 8}
	canvases := plot.Align(rows, t, dc)
	for j := range rows {
		for i := range rows[j] {
			rows[j][i].Draw(canvases[j][i])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		return err
	}
	return f.Close()
}

// powerOfTwoTicks labels a log axis at every power of two, for ranges
// within a decade or two, where LogTicks would label nothing; a range
// narrower than a factor of two gets evenly spaced round values instead.
type powerOfTwoTicks struct{}

func (powerOfTwoTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for v := math.Pow(2, math.Ceil(math.Log2(lo))); v <= hi; v *= 2 {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	if len(ticks) >= 2 {
		return ticks
	}
	step := math.Pow(10, math.Floor(math.Log10((hi-lo)/3)))
	for _, m := range []float64{1, 2, 5, 10} {
		if (hi-lo)/(step*m) <= 5 {
			step *= m
			break
		}
	}
	ticks = nil
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	return ticks
}
