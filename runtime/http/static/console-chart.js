// Small SVG line charts drawn with DOM calls (no markup strings, no library).
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 180;
const PAD = { left: 48, right: 12, top: 10, bottom: 24 };

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function bounds(series, xRange) {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const [xMin, xMax] = xRange || [Math.min(...xs), Math.max(...xs)];
  return { xMin, xMax: xMax > xMin ? xMax : xMin + 1, yMax: Math.max(...ys, 1e-9) * 1.1 };
}

function short(value) {
  if (value >= 1000) return `${(value / 1000).toFixed(1)}k`;
  return value >= 10 ? value.toFixed(0) : value.toFixed(1);
}

// series: [{name, points: [[x, y], ...]}]; formatX: how an x tick reads (a time, a stream count);
// xRange: a fixed [min, max] for the x axis (a time window) instead of the points' own.
export function lineChart(container, series, { label, formatX = short, xRange } = {}) {
  const drawn = series.filter((s) => s.points.length);
  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": label || "chart" });
  if (!drawn.length) {
    chart.append(svg("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "empty" }, "no data yet"));
    container.replaceChildren(chart);
    return;
  }
  const { xMin, xMax, yMax } = bounds(drawn, xRange);
  const x = (v) => PAD.left + ((v - xMin) / (xMax - xMin)) * (WIDTH - PAD.left - PAD.right);
  const y = (v) => HEIGHT - PAD.bottom - (v / yMax) * (HEIGHT - PAD.top - PAD.bottom);
  chart.append(svg("line", { x1: PAD.left, y1: y(0), x2: WIDTH - PAD.right, y2: y(0), class: "axis" }));
  chart.append(svg("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: y(0), class: "axis" }));
  for (const fraction of [0, 0.5, 1]) {
    const value = (yMax / 1.1) * fraction;
    chart.append(svg("text", { x: PAD.left - 6, y: y(value) + 4, "text-anchor": "end", class: "tick" }, short(value)));
  }
  for (const value of [xMin, (xMin + xMax) / 2, xMax]) {
    const at = { x: x(value), y: HEIGHT - 6, "text-anchor": "middle", class: "tick" };
    chart.append(svg("text", at, formatX(value)));
  }
  drawn.forEach((s, index) => {
    const path = s.points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    const line = svg("path", { d: path, class: `series series-${index % 4}` });
    line.append(svg("title", {}, s.name));
    chart.append(line);
    for (const [px, py] of s.points) { // a dot per point: one point alone is no line
      const dot = svg("circle", { cx: x(px).toFixed(1), cy: y(py).toFixed(1), r: 3, class: `dot dot-${index % 4}` });
      dot.append(svg("title", {}, `${s.name}: ${short(py)} at ${formatX(px)}`));
      chart.append(dot);
    }
  });
  container.replaceChildren(chart);
}
