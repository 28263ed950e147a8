// The soak's figures as one SVG: a panel per figure over time, written by hand (a few polylines
// and labels) so the plot needs no charting package and no browser.
import type { Sample } from "./trend.ts";

interface Panel {
  title: string;
  unit: string;
  series: { name: string; color: string; values: number[] }[];
}

const width = 900;
const panelHeight = 170;
const margin = { left: 70, right: 20, top: 28, bottom: 26 };

const escapeXml = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;");
const format = (value: number) => (Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(1));

export function renderSvg(samples: Sample[], title: string): string {
  const minutes = samples.map((sample) => sample.atMs / 60_000);
  const panels: Panel[] = [
    {
      title: "memory",
      unit: "MB",
      series: [
        { name: "RSS", color: "#1f77b4", values: samples.map((sample) => sample.rssMb) },
        { name: "heap used after GC", color: "#d62728", values: samples.map((sample) => sample.heapUsedMb) },
        { name: "external + buffers", color: "#2ca02c", values: samples.map((sample) => sample.externalMb) },
      ],
    },
    {
      title: "open file descriptors",
      unit: "",
      series: [{ name: "fds", color: "#9467bd", values: samples.map((sample) => sample.fds) }],
    },
    {
      title: "event-loop delay per interval",
      unit: "ms",
      series: [
        { name: "p99", color: "#ff7f0e", values: samples.map((sample) => sample.eventLoop.p99Ms) },
        { name: "p50", color: "#8c564b", values: samples.map((sample) => sample.eventLoop.p50Ms) },
      ],
    },
  ];
  const maxMinute = Math.max(1e-9, ...minutes);
  const plotWidth = width - margin.left - margin.right;
  const parts: string[] = [];
  panels.forEach((panel, index) => {
    const top = 30 + index * panelHeight;
    const plotHeight = panelHeight - margin.top - margin.bottom;
    const all = panel.series.flatMap((series) => series.values);
    const low = Math.min(0, ...all);
    const high = Math.max(1, ...all) * 1.1;
    const x = (minute: number) => margin.left + (minute / maxMinute) * plotWidth;
    const y = (value: number) => top + margin.top + plotHeight - ((value - low) / (high - low)) * plotHeight;
    parts.push(
      `<text x="${margin.left}" y="${top + 16}" font-size="13" font-weight="bold">${escapeXml(panel.title)}</text>`,
      `<rect x="${margin.left}" y="${top + margin.top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#999"/>`,
      `<text x="${margin.left - 6}" y="${y(high) + 4}" font-size="11" text-anchor="end">${format(high)} ${panel.unit}</text>`,
      `<text x="${margin.left - 6}" y="${y(low) + 4}" font-size="11" text-anchor="end">${format(low)} ${panel.unit}</text>`,
      `<text x="${margin.left}" y="${top + panelHeight - 8}" font-size="11">0 min</text>`,
      `<text x="${width - margin.right}" y="${top + panelHeight - 8}" font-size="11" text-anchor="end">${format(maxMinute)} min</text>`,
    );
    panel.series.forEach((series, seriesIndex) => {
      const points = series.values.map((value, at) => `${x(minutes[at]!).toFixed(1)},${y(value).toFixed(1)}`).join(" ");
      parts.push(
        `<polyline fill="none" stroke="${series.color}" stroke-width="1.5" points="${points}"/>`,
        `<text x="${margin.left + 260 + seriesIndex * 170}" y="${top + 16}" font-size="11" fill="${series.color}">${escapeXml(series.name)}</text>`,
      );
    });
  });
  const height = 30 + panels.length * panelHeight;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${margin.left}" y="20" font-size="14">${escapeXml(title)}</text>`,
    ...parts,
    "</svg>",
    "",
  ].join("\n");
}
