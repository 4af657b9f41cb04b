package main

import (
	"fmt"
	"image/color"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// chartTools are the bars of each group, in order, with their colours.
var chartTools = []struct {
	name  string
	color color.Color
}{
	{toolExport, color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}},
	{toolCrane, color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}},
	{toolSkopeo, color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}},
	{toolFloor, color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff}},
}

// writeChart draws, per shape, each tool's median time relative to crane's
// (lower is better), and saves it as a PNG.
func writeChart(r results, path string) error {
	p := plot.New()
	p.Title.Text = "median wall time relative to crane push (lower is better)"
	p.Y.Label.Text = "× crane"
	p.Y.Min = 0
	var names []string
	var shapes []shapeResult
	for _, s := range r.Shapes {
		if c := s.tool(toolCrane); c != nil && median(c.Seconds) > 0 {
			// One short line per part of the title, so that labels do not run into each other.
			label := strings.NewReplacer(", ", "\n", " (", "\n(", ": ", "\n").Replace(s.Title)
			names = append(names, fmt.Sprintf("%s\ncrane %s", label, fmtSeconds(median(c.Seconds))))
			shapes = append(shapes, s)
		}
	}
	if len(shapes) == 0 {
		return fmt.Errorf("no shape has crane timings to draw")
	}
	width := vg.Points(14)
	for i, t := range chartTools {
		vals := make(plotter.Values, len(shapes))
		for j, s := range shapes {
			if tr := s.tool(t.name); tr != nil && len(tr.Seconds) > 0 {
				vals[j] = median(tr.Seconds) / median(s.tool(toolCrane).Seconds)
			}
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return err
		}
		bars.Color = t.color
		bars.LineStyle.Width = 0
		bars.Offset = width * vg.Length(2*i-len(chartTools)+1) / 2
		p.Add(bars)
		p.Legend.Add(t.name, bars)
	}
	one := plotter.NewFunction(func(float64) float64 { return 1 })
	one.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(one)
	p.Legend.Top = true
	p.NominalX(names...)
	p.X.Tick.Label.Font.Size = vg.Points(8)
	return p.Save(13*vg.Inch, 5.5*vg.Inch, path)
}
