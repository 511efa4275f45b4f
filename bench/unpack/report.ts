/**
 * The unpack benchmark's output: per filesystem, a table of medians (MB/s and entries/s of the uncompressed
 * image, peak RSS, every run), the ratios against the targets of issue 3, where the daemon's time goes per
 * driver, and the rows that could not run with the reason.
 */
import type { DriverName } from './fs';
import type { Comp } from './layers';
import { COMPS } from './layers';
import type { UnpackRun } from './runners';

export type RowKind = 'apply' | 'daemon' | 'tar' | 'ctr' | 'ingest' | 'import';

export interface Row {
  kind: RowKind;
  tool: string;
  comp: Comp;
  ms: number[];
  /** Peak RSS in KiB (0: not measured). For daemon and import rows the daemon's VmHWM. */
  rssKb: number;
  driver?: DriverName;
  /** Daemon rows: what the Unpack replies said, per run. */
  unpacks?: UnpackRun[];
  /** Daemon rows: Unpacks of an empty layer on each layer's parent less their syncfs, summed (timed once, apart). */
  snapshotOpsMs?: number;
  /** Import row: the snapctl client process's own peak RSS (KiB). */
  clientRssKb?: number;
}

export interface Section {
  /** e.g. "host (ext4)". */
  title: string;
  rows: Row[];
  /** Rows that did not run here, with why. */
  skipped: string[];
}

export interface Totals {
  bytes: number;
  entries: number;
}

/** Issue 3's targets. */
const TAR_TARGET: Record<Comp, number> = { gzip: 0.75, zstd: 0.95 };
const CTR_TARGET = 0.6;
const RSS_TARGET_MB = 150;

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const mb = (kb: number): string => `${(kb / 1024).toFixed(0)} MB`;

function ratio(a: number, b: number, target: number): string {
  const r = a / b;
  return `${r.toFixed(2)}${r <= target ? '' : '!'}`;
}

function tableLines(rows: readonly Row[], t: Totals): string[] {
  const out = [`  ${'tool'.padEnd(42)} ${'comp'.padEnd(5)} ${'median s'.padStart(9)} ${'MB/s'.padStart(7)} ${'entries/s'.padStart(10)} ${'peak RSS'.padStart(9)}  runs (s)`];
  for (const row of rows) {
    const m = median(row.ms) / 1000;
    out.push(
      `  ${row.tool.padEnd(42)} ${row.comp.padEnd(5)} ${m.toFixed(2).padStart(9)} ${(t.bytes / 1e6 / m).toFixed(0).padStart(7)} ${(t.entries / m).toFixed(0).padStart(10)} ${(row.rssKb ? mb(row.rssKb) : '-').padStart(9)}  ${row.ms.map((x) => (x / 1000).toFixed(2)).join(' ')}`,
    );
  }
  return out;
}

function ratioLine(rows: readonly Row[], comp: Comp): string | undefined {
  const of = (kind: RowKind): Row[] => rows.filter((r) => r.comp === comp && r.kind === kind);
  const tar = of('tar')[0];
  const apply = of('apply')[0];
  const ctr = of('ctr')[0];
  const daemons = of('daemon');
  if (!tar && !ctr) return undefined;
  const parts: string[] = [];
  const tt = TAR_TARGET[comp];
  if (tar) {
    const m = median(tar.ms);
    if (apply) parts.push(`strata/tar ${ratio(median(apply.ms), m, tt)}`);
    for (const d of daemons) parts.push(`daemon(${d.driver})/tar ${ratio(median(d.ms), m, tt)}`);
    parts.push(`(target ≤ ${tt})`);
  }
  if (ctr) {
    const m = median(ctr.ms);
    const c: string[] = [];
    if (apply) c.push(`strata/containerd ${ratio(median(apply.ms), m, CTR_TARGET)}`);
    for (const d of daemons) c.push(`daemon(${d.driver})/containerd ${ratio(median(d.ms), m, CTR_TARGET)}`);
    parts.push(`· ${c.join(' ')} (target ≤ ${CTR_TARGET})`);
  }
  return `  ${comp}: ${parts.join(' ')}`;
}

/** wall = client/RPC + the daemon's Unpack, which is Prepare/Commit + apply (read, decompress, write) + syncfs. */
function breakdownLine(row: Row): string | undefined {
  if (!row.unpacks?.length) return undefined;
  const wall = median(row.unpacks.map((u) => u.wallMs));
  const server = median(row.unpacks.map((u) => u.serverMs));
  const sync = median(row.unpacks.map((u) => u.syncMs));
  const ops = row.snapshotOpsMs;
  const apply = Math.max(0, server - sync - (ops ?? 0));
  return (
    `  ${`${row.driver} ${row.comp}:`.padEnd(14)} ${secs(wall)} wall = ${secs(wall - server)} client/RPC + ${secs(server)} in Unpack` +
    (ops === undefined ? ` (syncfs ${secs(sync)})` : ` ≈ ${secs(ops)} Prepare+Commit + ${secs(apply)} apply + ${secs(sync)} syncfs`)
  );
}

function rssLine(rows: readonly Row[]): string | undefined {
  const parts: string[] = [];
  for (const r of rows) {
    if (!r.rssKb) continue;
    const flag = r.rssKb / 1024 <= RSS_TARGET_MB ? '' : '!';
    if (r.kind === 'apply') parts.push(`snapctl apply ${r.comp} ${mb(r.rssKb)}${flag}`);
    if (r.kind === 'daemon') parts.push(`daemon(${r.driver}) ${r.comp} ${mb(r.rssKb)}${flag}`);
    if (r.kind === 'import') parts.push(`snapctl import ${r.comp}: daemon ${mb(r.rssKb)}${flag} + client ${mb(r.clientRssKb ?? 0)}`);
  }
  return parts.length ? `  peak RSS (target ≤ ${RSS_TARGET_MB} MB): ${parts.join(', ')}` : undefined;
}

export function render(sections: readonly Section[], t: Totals): string {
  const out: string[] = [];
  for (const s of sections) {
    out.push('', `== ${s.title}`);
    if (s.rows.length) out.push(...tableLines(s.rows, t));
    for (const why of s.skipped) out.push(`  skipped: ${why}`);
    if (!s.rows.length) continue;
    out.push('  ratios of medians (! = target missed):');
    for (const comp of COMPS) {
      const l = ratioLine(s.rows, comp);
      if (l) out.push(`  ${l}`);
    }
    const bd = s.rows.map(breakdownLine).filter((l): l is string => l !== undefined);
    if (bd.length) out.push('  where the daemon path\'s time goes (medians; Prepare+Commit = Unpacks of an empty layer on the same parents less their syncfs, timed apart):', ...bd.map((l) => `  ${l}`));
    const rss = rssLine(s.rows);
    if (rss) out.push(rss);
  }
  return out.join('\n') + '\n';
}
