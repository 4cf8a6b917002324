// lib/media.js: the media section's arithmetic, without the DOM: steps for the slider and the strip, the step shown
// for a slider position, and a heatmap's pixels from the server's columns x bins matrix.

// `count` steps spread evenly over `steps` (sorted, distinct), first and last included: the strip across a run.
export function evenSteps(steps, count) {
  if (steps.length <= count) return steps.slice();
  const out = [];
  for (let i = 0; i < count; i++) out.push(steps[Math.round((i * (steps.length - 1)) / (count - 1))]);
  return [...new Set(out)];
}

// The step of `steps` (sorted) closest to `target`; ties go to the earlier one. null for no steps.
export function nearestStep(steps, target) {
  if (!steps.length) return null;
  let lo = 0, hi = steps.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (steps[mid] < target) lo = mid + 1; else hi = mid;
  }
  if (lo > 0 && target - steps[lo - 1] <= steps[lo] - target) return steps[lo - 1];
  return steps[lo];
}

// A sequential colour scale (dark blue -> teal -> yellow), t in [0, 1] -> [r, g, b].
const STOPS = [[13, 8, 135], [84, 2, 163], [139, 10, 165], [185, 50, 137], [219, 92, 104], [244, 136, 73], [254, 188, 43], [240, 249, 33]];
export function heatColor(t) {
  const x = Math.min(1, Math.max(0, t)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  return STOPS[i].map((c, k) => Math.round(c + f * (STOPS[i + 1][k] - c)));
}

// RGBA pixels of a heatmap: `values` is one array of `bins` densities per column (low values first); the image is
// columns wide and bins tall, the lowest bin at the bottom. Each column is scaled by the largest value of all.
export function heatmapPixels(values, bins) {
  const width = values.length;
  const pixels = new Uint8ClampedArray(width * bins * 4);
  let max = 0;
  for (const column of values) for (const v of column) if (v > max) max = v;
  for (let x = 0; x < width; x++) {
    const column = values[x];
    for (let b = 0; b < bins; b++) {
      const [r, g, bl] = heatColor(max > 0 ? Math.sqrt(column[b] / max) : 0);
      const at = ((bins - 1 - b) * width + x) * 4;
      pixels[at] = r; pixels[at + 1] = g; pixels[at + 2] = bl; pixels[at + 3] = 255;
    }
  }
  return pixels;
}

// The rows of page `page` (0-based) of a table, `size` rows a page, and how many pages there are.
export function tablePage(rows, page, size) {
  const pages = Math.max(1, Math.ceil(rows.length / size));
  const at = Math.min(Math.max(0, page), pages - 1);
  return { rows: rows.slice(at * size, at * size + size), page: at, pages };
}
