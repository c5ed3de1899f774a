/** Exponent b of calls ≈ a·G^b, least squares on logs over the sizes with G > 1. */
export function growthExponent(points: Array<{ g: number; calls: number }>): number {
  const usable = points.filter((p) => p.g > 1 && p.calls > 0);
  if (usable.length < 2) return Number.NaN;
  const xs = usable.map((p) => Math.log(p.g));
  const ys = usable.map((p) => Math.log(p.calls));
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  const num = xs.reduce((sum, x, i) => sum + (x - mx) * ((ys[i] ?? 0) - my), 0);
  const den = xs.reduce((sum, x) => sum + (x - mx) ** 2, 0);
  return den === 0 ? Number.NaN : num / den;
}
