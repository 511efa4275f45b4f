/**
 * Milliseconds on the monotonic clock, for the apply worker's own timings. Not `performance.now()`: on a worker
 * thread its first use loads perf_hooks, a few ms of start-up that snapctl apply pays once per layer.
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
