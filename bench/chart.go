package main

import (
	"encoding/xml"
	"fmt"
	"math"
	"strings"
)

// contenderColors keeps each contender's color the same in every panel.
var contenderColors = map[string]string{
	"hash":             "#1f77b4",
	"string":           "#6baed6",
	"hash-users":       "#2ca02c",
	"string-users":     "#98df8a",
	"hash-plain":       "#9467bd",
	"hash-zstd":        "#8c564b",
	"hash-zstd-better": "#e377c2",
	"boj":              "#d62728",
	"goredis":          "#ff7f0e",
	"raw":              "#7f7f7f",
}

const (
	panelW   = 470
	panelH   = 380
	marginL  = 64
	marginR  = 12
	marginT  = 56
	marginB  = 64
	legendH  = 34
	fontFace = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""
)

// renderChart draws median ops/s by contender and concurrency, one panel per
// workload, at the session size closest to 1 KB, with each bar's ratio to
// boj/redistore above it. Without throughput results it draws a note.
func renderChart(cfg *config, tp *throughputResults) (string, error) {
	var b strings.Builder
	if tp == nil {
		b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" width="400" height="40"><text x="10" y="25" ` + fontFace + ` font-size="13">No throughput results in this run.</text></svg>` + "\n")
		return b.String(), nil
	}
	size := chartSize(cfg.sizes)
	width := panelW * len(cfg.workloads)
	height := panelH + legendH
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	for i, wname := range cfg.workloads {
		w, _ := workloadByName(wname)
		drawPanel(&b, cfg, tp, w, size, i*panelW)
	}
	// Legend across the bottom.
	x := 20.0
	y := float64(panelH + 12)
	for _, name := range cfg.contenders {
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/>`, x, y, contenderColors[name])
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" %s font-size="12">%s</text>`+"\n", x+16, y+10, fontFace, esc(contenderLabels[name]))
		x += 30 + 7*float64(len(contenderLabels[name]))
	}
	b.WriteString("</svg>\n")
	return b.String(), nil
}

func drawPanel(b *strings.Builder, cfg *config, tp *throughputResults, w workload, size, x0 int) {
	plotW := float64(panelW - marginL - marginR)
	plotH := float64(panelH - marginT - marginB)
	left := float64(x0 + marginL)
	top := float64(marginT)
	bottom := top + plotH

	var maxOps float64
	for _, c := range cfg.conc {
		for _, name := range cfg.contenders {
			if cr := tp.get(cellKey{w.name, size, c, name}); cr != nil {
				maxOps = max(maxOps, cr.med.opsPerSec)
			}
		}
	}
	step := niceStep(maxOps / 5)
	yMax := math.Ceil(maxOps/step) * step
	if yMax <= 0 {
		yMax, step = 1, 1
	}

	fmt.Fprintf(b, `<text x="%.0f" y="22" %s font-size="15" font-weight="bold">%s, %s sessions</text>`+"\n",
		left, fontFace, esc(capitalize(w.label)), esc(sizeLabel(size)))
	fmt.Fprintf(b, `<text x="%.0f" y="40" %s font-size="11" fill="#555">median ops/s; above each bar: ratio to boj/redistore</text>`+"\n", left, fontFace)

	// Grid and y axis.
	for v := 0.0; v <= yMax+step/2; v += step {
		y := bottom - v/yMax*plotH
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`, left, y, left+plotW, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" %s font-size="10" text-anchor="end">%s</text>`+"\n", left-6, y+3, fontFace, esc(shortNum(v)))
	}
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", left, bottom, left+plotW, bottom)

	groupW := plotW / float64(len(cfg.conc))
	barW := min(28, groupW*0.8/float64(len(cfg.contenders)))
	for gi, c := range cfg.conc {
		gx := left + float64(gi)*groupW + (groupW-barW*float64(len(cfg.contenders)))/2
		for ci, name := range cfg.contenders {
			k := cellKey{w.name, size, c, name}
			cr := tp.get(k)
			if cr == nil {
				continue
			}
			h := cr.med.opsPerSec / yMax * plotH
			x := gx + float64(ci)*barW
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s ops/s</title></rect>`+"\n",
				x+1, bottom-h, barW-2, h, contenderColors[name], esc(contenderLabels[name]), fmtInt(cr.med.opsPerSec))
			if r := tp.ratio(k); r > 0 {
				fmt.Fprintf(b, `<text x="%.1f" y="%.1f" %s font-size="9" text-anchor="middle">%.2f</text>`+"\n",
					x+barW/2, bottom-h-3, fontFace, r)
			}
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" %s font-size="12" text-anchor="middle">%d</text>`+"\n",
			left+float64(gi)*groupW+groupW/2, bottom+18, fontFace, c)
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" %s font-size="12" text-anchor="middle">concurrent requests</text>`+"\n",
		left+plotW/2, bottom+38, fontFace)
}

// niceStep rounds a raw step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// shortNum writes an axis value: 0, 500, 12k, 1.5M.
func shortNum(v float64) string {
	switch {
	case v >= 1e6:
		return trimFloat(v/1e6) + "M"
	case v >= 1e3:
		return trimFloat(v/1e3) + "k"
	}
	return trimFloat(v)
}

func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
