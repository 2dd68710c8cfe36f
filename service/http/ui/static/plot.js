// Plots of vector samples as SVG, drawn in the page from the API's JSON answers: a scatter over the
// data's modes (2-D) or along the data's density (1-D), each sample coloured by D's realness.
"use strict";

function realnessColour(r) {
  // 0 (D says fake) red -> 1 (D says real) green, through amber.
  const hue = Math.round(120 * Math.min(1, Math.max(0, r)));
  return `hsl(${hue}, 75%, 38%)`;
}

const SVG = "http://www.w3.org/2000/svg";
function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// samples: (n, 1 or 2) as the API answered them; realness: (n,) or null; data: {modes, sigma} of the
// model's dataset or null; path: join the samples in order (a walk).
function drawScatter(svg, samples, realness, { dims, data, dataset, path = false }) {
  const size = 480, pad = 28;
  const pts = samples.map((s) => (dims === 1 ? [s[0], 0] : [s[0], s[1]]));
  const modes = data ? data.modes.map((m) => (dims === 1 ? [m[0], 0] : m)) : [];
  const spread = data ? 3 * data.sigma : 0;
  let xs = pts.map((p) => p[0]).concat(modes.map((m) => m[0] - spread), modes.map((m) => m[0] + spread));
  let ys = pts.map((p) => p[1]).concat(modes.map((m) => m[1] - spread), modes.map((m) => m[1] + spread));
  if (dims === 1) ys = [-1, 1];
  const lo = [Math.min(...xs), Math.min(...ys)], hi = [Math.max(...xs), Math.max(...ys)];
  const span = Math.max(hi[0] - lo[0], hi[1] - lo[1], 1e-6) * 1.08;
  const mid = [(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2];
  const sx = (x) => pad + ((x - mid[0]) / span + 0.5) * (size - 2 * pad);
  const sy = (y) => size - pad - ((y - mid[1]) / span + 0.5) * (size - 2 * pad);
  svg.replaceChildren();
  svg.append(svgEl("rect", { x: 0, y: 0, width: size, height: size, fill: "#fff" }));
  svg.append(svgEl("line", { x1: pad, y1: size - pad, x2: size - pad, y2: size - pad, stroke: "#999" }));
  svg.append(svgEl("text", { x: pad, y: size - 8, "font-size": 11, fill: "#555" }, (mid[0] - span / 2).toFixed(2)));
  svg.append(svgEl("text", { x: size - pad, y: size - 8, "font-size": 11, fill: "#555", "text-anchor": "end" }, (mid[0] + span / 2).toFixed(2)));
  if (dims === 1) {
    // The samples' histogram as a density (not for a walk), beside the data's density N(mean, sigma^2), on one scale.
    const x0 = mid[0] - span / 2, bins = 30, width = span / bins;
    const counts = new Array(bins).fill(0);
    for (const p of pts) counts[Math.min(bins - 1, Math.max(0, Math.floor((p[0] - x0) / width)))] += 1;
    const hist = counts.map((c) => c / (pts.length * width));
    const pdf = (x) => (data ? Math.exp(-0.5 * ((x - data.modes[0][0]) / data.sigma) ** 2) / (data.sigma * Math.sqrt(2 * Math.PI)) : 0);
    const top = Math.max(...hist, data ? pdf(data.modes[0][0]) : 0, 1e-9);
    const hy = (v) => size - pad - (v / top) * (size - 3 * pad);
    hist.forEach((v, i) => {
      if (v > 0 && !path) svg.append(svgEl("rect", { x: sx(x0 + i * width).toFixed(1), y: hy(v).toFixed(1), width: ((width / span) * (size - 2 * pad)).toFixed(1),
                                          height: (size - pad - hy(v)).toFixed(1), fill: "#4a6fa5", "fill-opacity": 0.25, class: "histogram" }));
    });
    if (data) {
      const steps = 120;
      const d = Array.from({ length: steps + 1 }, (_, i) => {
        const x = x0 + (span * i) / steps;
        return `${i ? "L" : "M"}${sx(x).toFixed(1)},${hy(pdf(x)).toFixed(1)}`;
      }).join("");
      svg.append(svgEl("path", { d, fill: "none", stroke: "#888", "stroke-dasharray": "4 3", class: "data-density" }));
    }
  } else {
    for (const m of modes) {
      svg.append(svgEl("circle", { cx: sx(m[0]), cy: sy(m[1]), r: Math.max(6, (spread / span) * (size - 2 * pad)),
                                   fill: "none", stroke: "#888", "stroke-dasharray": "3 2", class: "data-mode" }));
    }
  }
  // 1-D: a walk climbs the plot step by step; samples are jittered in a band above the axis.
  const py = (p, i) => (dims !== 1 ? sy(p[1]) : path ? size - pad - 8 - (i / Math.max(1, pts.length - 1)) * (size - 4 * pad)
                                                      : size - pad - 8 - ((i * 37) % 60));
  if (path && pts.length > 1) {
    svg.append(svgEl("polyline", { points: pts.map((p, i) => `${sx(p[0]).toFixed(1)},${py(p, i).toFixed(1)}`).join(" "), fill: "none", stroke: "#4a6fa5" }));
  }
  pts.forEach((p, i) => {
    svg.append(svgEl("circle", { cx: sx(p[0]).toFixed(1), cy: py(p, i).toFixed(1), r: 3.2, class: "sample",
                                 fill: realness ? realnessColour(realness[i]) : "#4a6fa5", "fill-opacity": 0.8 }));
  });
  const legend = data ? `dashed: the data (${dataset})` : "no data modes known for this dataset";
  svg.append(svgEl("text", { x: pad, y: 16, "font-size": 12, fill: "#555" }, legend));
}
