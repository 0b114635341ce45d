// A stacked bar chart of calls per time bucket by disposition, drawn as SVG.

import { s, h, fmtHour, fmtTime, fmtDay } from './dom.js';

export const DISPOSITIONS = [
  { key: 'ANSWERED', label: 'Answered', cls: 'd-answered' },
  { key: 'NO ANSWER', label: 'No answer', cls: 'd-no-answer' },
  { key: 'BUSY', label: 'Busy', cls: 'd-busy' },
  { key: 'CANCELLED', label: 'Cancelled', cls: 'd-cancelled' },
  { key: 'FAILED', label: 'Failed', cls: 'd-failed' },
];

function niceMax(v) {
  if (v <= 4) return 4;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * Draws buckets [{start_us, total, ANSWERED, BUSY, ...}] (oldest first, as GET
 * /cdrs/summary lists them) as a figure with a legend. bucketSec is the bucket width.
 */
export function callChart(buckets, bucketSec, width = 720) {
  // Drawn at the width it is shown at, so that the text keeps its size on a phone.
  const W = Math.max(300, Math.min(1200, Math.round(width))), H = W < 500 ? 200 : 240, L = 36, R = 8, T = 10, B = 28;
  const n = Math.max(buckets.length, 1);
  const bw = (W - L - R) / n;
  const totals = buckets.map((b) => b.total);
  const max = niceMax(Math.max(0, ...totals));
  const y = (v) => T + (H - T - B) * (1 - v / max);

  const svg = s('svg', {
    class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': `Calls per ${bucketSec >= 86400 ? 'day' : bucketSec >= 3600 ? 'hour' : 'bucket'}, by outcome; at most ${Math.max(0, ...totals)} in one bucket`,
  });
  // grid lines and y labels
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i, yy = y(v);
    svg.append(s('line', { x1: L, x2: W - R, y1: yy, y2: yy, class: 'grid' }));
    svg.append(s('text', { x: L - 6, y: yy + 4, class: 'axis', 'text-anchor': 'end' }, String(Math.round(v))));
  }
  buckets.forEach((b, i) => {
    const x = L + i * bw;
    const g = s('g', { class: 'bar' });
    let acc = 0;
    const parts = [];
    for (const d of DISPOSITIONS) {
      const v = b[d.key];
      if (!v) continue;
      parts.push(`${d.label}: ${v}`);
      g.append(s('rect', { x: x + 1, width: Math.max(1, bw - 2), y: y(acc + v), height: y(acc) - y(acc + v), class: d.cls }));
      acc += v;
    }
    // an invisible full-height target so hovering anywhere in the column shows the numbers
    g.append(s('rect', { x, width: bw, y: T, height: H - T - B, class: 'hit' }));
    g.append(s('title', null, `${fmtTime(b.start_us)}: ${acc} call${acc === 1 ? '' : 's'}${parts.length ? ' — ' + parts.join(', ') : ''}`));
    svg.append(g);
    const every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor((W - L) / 70))));
    if (i % every === 0) {
      svg.append(s('text', { x: x + bw / 2, y: H - 8, class: 'axis', 'text-anchor': 'middle' }, bucketSec >= 86400 ? fmtDay(b.start_us) : fmtHour(b.start_us)));
    }
  });
  svg.append(s('line', { x1: L, x2: W - R, y1: y(0), y2: y(0), class: 'base' }));

  const sums = DISPOSITIONS.map((d) => buckets.reduce((a, b) => a + b[d.key], 0));
  const legend = h('ul', { class: 'legend' }, DISPOSITIONS.map((d, i) =>
    h('li', null, h('span', { class: ['swatch', d.cls] }), `${d.label} `, h('strong', null, String(sums[i])))));
  return h('figure', { class: 'chart-figure' }, svg, legend);
}
