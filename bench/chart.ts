// Owns BENCHMARKS.svg: one panel per group (and one for memory per connection), horizontal bars
// labelled with the server, the value and the ratio to the baseline; sockserv in blue, the
// baseline in dark grey, a dashed line where a target sits. Plain SVG text, no dependency.

import { MAX_BYTES_PER_SESSION } from './issue-targets.js';
import { MAX_BYTES_PER_CONNECTION, MAX_PING_P99_MS } from './targets.js';
import { type BenchResults, type Group, SCENARIO_IDS, ratioToBaseline, rowValue } from './results.js';

interface Bar {
  label: string;
  value: number | undefined;
  text: string;
  kind: 'sockserv' | 'baseline' | 'other';
}

interface Panel {
  title: string;
  bars: Bar[];
  marker?: { value: number; label: string };
}

const WIDTH = 960;
const LABEL_WIDTH = 250;
const BAR_AREA = 470;
const BAR_HEIGHT = 18;
const BAR_GAP = 6;
const PANEL_TITLE = 28;
const PANEL_GAP = 18;
const COLORS = { sockserv: '#2563eb', baseline: '#4b5563', other: '#cbd5e1' } as const;

/** Where a target line goes on a group's axis (ratio targets scale with the baseline). */
const GROUP_MARKERS: Record<string, { ratio?: number; value?: number; label: string }> = {
  'trivial-p16': { ratio: 0.8, label: 'target 0.8×' },
  'cpu-p1': { ratio: 1.0, label: 'target 1.0×' },
  'cpu-p4': { ratio: 1.0, label: 'target 1.0×' },
  responsiveness: { value: MAX_PING_P99_MS, label: `target ${MAX_PING_P99_MS} ms` },
  cheap: { value: MAX_PING_P99_MS, label: `target ${MAX_PING_P99_MS} ms` },
  'sessions-p16': { ratio: 2.0, label: 'target 2.0× CPython' },
  'sessions-p1': { ratio: 1.5, label: 'target 1.5× CPython' },
  churn: { ratio: 0.8, label: 'target 0.8×' },
};

export function renderChart(results: BenchResults): string {
  const panels: Panel[] = [];
  for (const id of SCENARIO_IDS) {
    const scenario = results.scenarios[id];
    if (!scenario) continue;
    for (const group of scenario.groups) panels.push(groupPanel(group));
    const held = scenario.connections ?? [];
    if (held.length > 0) {
      panels.push({
        title: `Server memory per ${id === 'sessions' ? 'idle session' : 'connection'}, ${held[0]!.opened.toLocaleString('en-US')} open (lower is better)`,
        bars: held.map((many) => ({
          label: many.server,
          value: many.bytesPerConnection / 1024,
          text: `${(many.bytesPerConnection / 1024).toFixed(2)} KiB`,
          kind: many.sockserv ? 'sockserv' : 'baseline',
        })),
        marker: memoryMarker(id === 'sessions' ? MAX_BYTES_PER_SESSION : MAX_BYTES_PER_CONNECTION),
      });
    }
  }

  const quick = Object.values(results.scenarios).some((s) => s?.quick);
  const m = results.machine;
  const header = `sockserv benchmarks — ${m.cpus} × ${m.cpuModel}, Node ${m.node}${quick ? ' — QUICK RUN (indicative only)' : ''}`;
  let y = 40;
  const body: string[] = [];
  for (const panel of panels) {
    body.push(...drawPanel(panel, y));
    y += PANEL_TITLE + panel.bars.length * (BAR_HEIGHT + BAR_GAP) + PANEL_GAP;
  }
  const height = y + 30;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="13">`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    `<text x="16" y="24" font-size="16" font-weight="600" fill="#111827">${escape(header)}</text>`,
    ...body,
    legend(height - 14),
    '</svg>',
    '',
  ].join('\n');
}

function memoryMarker(bytes: number): { value: number; label: string } {
  return { value: bytes / 1024, label: `target ${bytes / 1024} KiB` };
}

function groupPanel(group: Group): Panel {
  const lowerIsBetter = group.metric === 'p99Ms';
  const bars = group.rows.map((row): Bar => {
    const value = rowValue(group, row);
    const ratio = ratioToBaseline(group, row);
    const kind = row.sockserv ? 'sockserv' : row.server === group.baseline ? 'baseline' : 'other';
    if (value === undefined) return { label: row.server, value: undefined, text: 'failed', kind };
    const shown = lowerIsBetter ? `${value.toFixed(2)} ms p99` : `${Math.round(value).toLocaleString('en-US')} req/s`;
    const ratioText =
      ratio === undefined || row.server === group.baseline
        ? ''
        : lowerIsBetter && ratio < 1
          ? ` · ${formatRatio(1 / ratio)} lower than ${group.baseline}`
          : ` · ${formatRatio(ratio)} ${group.baseline}`;
    return { label: row.server, value, text: shown + ratioText, kind };
  });
  const spec = GROUP_MARKERS[group.id];
  const base = group.rows.find((r) => r.server === group.baseline);
  const baseValue = base ? rowValue(group, base) : undefined;
  const markerValue = spec?.value ?? (spec?.ratio !== undefined && baseValue !== undefined ? spec.ratio * baseValue : undefined);
  return {
    title: `${group.title} (${lowerIsBetter ? 'lower' : 'higher'} is better)`,
    bars,
    ...(spec && markerValue !== undefined ? { marker: { value: markerValue, label: spec.label } } : {}),
  };
}

function drawPanel(panel: Panel, top: number): string[] {
  const values = panel.bars.map((b) => b.value ?? 0);
  const max = Math.max(...values, panel.marker?.value ?? 0) * 1.05 || 1;
  const scale = (v: number): number => (v / max) * BAR_AREA;
  const out = [`<text x="16" y="${top + 18}" font-weight="600" fill="#111827">${escape(panel.title)}</text>`];
  // The target line goes first, so bars and their white-outlined labels sit on top of it.
  if (panel.marker) {
    const x = LABEL_WIDTH + scale(panel.marker.value);
    const y0 = top + PANEL_TITLE - 4;
    const y1 = top + PANEL_TITLE + panel.bars.length * (BAR_HEIGHT + BAR_GAP) - BAR_GAP + 4;
    out.push(`<line x1="${x.toFixed(1)}" y1="${y0}" x2="${x.toFixed(1)}" y2="${y1}" stroke="#dc2626" stroke-width="1.5" stroke-dasharray="4 3"/>`);
    out.push(`<text x="${x.toFixed(1)}" y="${y1 + 12}" text-anchor="middle" font-size="11" fill="#dc2626">${escape(panel.marker.label)}</text>`);
  }
  panel.bars.forEach((bar, i) => {
    const y = top + PANEL_TITLE + i * (BAR_HEIGHT + BAR_GAP);
    out.push(`<text x="${LABEL_WIDTH - 8}" y="${y + 13}" text-anchor="end" fill="#374151">${escape(bar.label)}</text>`);
    if (bar.value === undefined) {
      out.push(`<text x="${LABEL_WIDTH + 4}" y="${y + 13}" fill="#b91c1c">${escape(bar.text)}</text>`);
      return;
    }
    const w = Math.max(1, scale(bar.value));
    out.push(`<rect x="${LABEL_WIDTH}" y="${y}" width="${w.toFixed(1)}" height="${BAR_HEIGHT}" rx="2" fill="${COLORS[bar.kind]}"/>`);
    out.push(
      `<text x="${(LABEL_WIDTH + w + 6).toFixed(1)}" y="${y + 13}" fill="#111827" stroke="#ffffff" stroke-width="4" paint-order="stroke">${escape(bar.text)}</text>`,
    );
  });
  return out;
}

function legend(y: number): string {
  const items: Array<[string, string]> = [
    [COLORS.sockserv, 'sockserv'],
    [COLORS.baseline, 'baseline of the ratio'],
    [COLORS.other, 'other servers'],
  ];
  return items
    .map(([color, label], i) => {
      const x = 16 + i * 190;
      return `<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${color}"/><text x="${x + 18}" y="${y}" fill="#374151">${escape(label)}</text>`;
    })
    .join('');
}

export function formatRatio(ratio: number): string {
  return ratio >= 10 ? `${ratio.toFixed(0)}×` : ratio >= 0.1 ? `${ratio.toFixed(2)}×` : `${ratio.toFixed(3)}×`;
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
