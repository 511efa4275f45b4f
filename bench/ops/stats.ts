/** Latency samples → percentiles. Nearest-rank percentiles: no interpolation between two real samples. */
export interface Summary {
  n: number;
  p50: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

export function summarize(samplesUs: readonly number[]): Summary {
  if (samplesUs.length === 0) return { n: 0, p50: NaN, p99: NaN, mean: NaN, min: NaN, max: NaN };
  const s = [...samplesUs].sort((a, b) => a - b);
  const rank = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
  return {
    n: s.length,
    p50: rank(50),
    p99: rank(99),
    mean: s.reduce((a, b) => a + b, 0) / s.length,
    min: s[0]!,
    max: s[s.length - 1]!,
  };
}

/** Microseconds since t0 (from process.hrtime.bigint()). */
export function usSince(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1000;
}

/** Runs fn `warmup` times unmeasured, then `n` times measured; fn may do per-iteration setup outside `time`. */
export async function sample(n: number, warmup: number, fn: (i: number) => Promise<number> | number): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn(-1 - i);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await fn(i));
  return out;
}
