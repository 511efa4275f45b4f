/**
 * Where the time of a snapshot operation goes: `node dist/bench/ops/profile.js [--driver overlay] [--n 2000]`.
 *
 * Runs the real daemon in this process (startDaemon) so each layer can be timed alone: the metadata store, the
 * Snapshotter core, protobuf encoding, the gRPC round trip of a do-nothing call, and the full call over the
 * socket. Wall-clock p50 and CPU time per operation are both shown: on a busy machine the CPU figure is the one
 * that still says what the code costs.
 */
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { SnapshotsApiClient, grpcTarget } from '../../src/client/snapshots';
import { humanMicros, table } from '../../src/cli/format';
import { createLogger } from '../../src/core/log';
import { DEFAULTS } from '../../src/daemon/config';
import { startDaemon } from '../../src/daemon/serve';
import { ListSnapshotsResponse, StatSnapshotResponse } from '../../src/gen/containerd/services/snapshots/v1/snapshots';
import { encodeInfoField, infoToPb } from '../../src/server/info-codec';
import { GrpcServer } from '../../src/server/h2/server';
import { fillTree } from './bare';
import { summarize, usSince } from './stats';

interface Line {
  what: string;
  p50: number;
  p99: number;
  cpuPerOp: number;
}

async function time(what: string, n: number, fn: (i: number) => unknown, warmup = Math.min(200, n)): Promise<Line> {
  for (let i = 0; i < warmup; i++) await fn(-1 - i);
  const samples: number[] = [];
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn(i);
    samples.push(usSince(t0));
  }
  const cpu = process.cpuUsage(cpu0);
  const s = summarize(samples);
  return { what, p50: s.p50, p99: s.p99, cpuPerOp: (cpu.user + cpu.system) / n };
}

/** A gRPC service whose one method does nothing: the floor of any unary call through grpc-js on a unix socket. */
const NOOP = {
  noop: {
    path: '/strata.bench.Noop/Noop',
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer): Buffer => b,
    requestDeserialize: (b: Buffer): Buffer => b,
    responseSerialize: (b: Buffer): Buffer => b,
    responseDeserialize: (b: Buffer): Buffer => b,
  },
} satisfies grpc.ServiceDefinition;

/** A do-nothing service on grpc-js's server or on strata's (src/server/h2), called by a grpc-js client. */
async function noopPair(dir: string, kind: 'grpc-js' | 'strata'): Promise<{ call(): Promise<void>; close(): void }> {
  const impl = { noop: (_c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.alloc(0)) };
  const sock = path.join(dir, `noop-${kind}.sock`);
  let stopServer: () => void;
  if (kind === 'strata') {
    const server = new GrpcServer({ maxReceiveMessageLength: 1 << 20, maxSendMessageLength: 1 << 20 });
    server.addService(NOOP, impl);
    await server.listen(sock);
    stopServer = () => server.forceShutdown();
  } else {
    const server = new grpc.Server();
    server.addService(NOOP, impl);
    await new Promise<void>((res, rej) => server.bindAsync(`unix:${sock}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));
    stopServer = () => server.forceShutdown();
  }
  const Client = grpc.makeGenericClientConstructor(NOOP, 'Noop');
  const client = new Client(grpcTarget(sock), grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    noop(req: Buffer, cb: (e: grpc.ServiceError | null, r: Buffer) => void): void;
  };
  return {
    call: () => new Promise<void>((res, rej) => client.noop(Buffer.alloc(0), (e) => (e ? rej(e) : res()))),
    close: () => {
      client.close();
      stopServer();
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { driver: { type: 'string' }, n: { type: 'string' } } });
  const n = Number(values.n ?? 2000);
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-prof-'));
  const daemon = await startDaemon(
    { ...DEFAULTS, root: path.join(base, 'root'), address: path.join(base, 's.sock'), driver: (values.driver ?? 'overlay') as 'overlay', volumes: { pluginSocket: '' } },
    createLogger('warn'),
  );
  const { store, snapshotter: s } = daemon.ctx;
  const client = new SnapshotsApiClient(daemon.ctx.config.address);
  const noop = await noopPair(base, 'grpc-js');
  const noopStrata = await noopPair(base, 'strata');
  const lines: Line[] = [];
  try {
    const labels = { 'containerd.io/snapshot.ref': `sha256:${'a'.repeat(64)}`, 'containerd.io/snapshot/cri.layer-digest': `sha256:${'b'.repeat(64)}` };
    await s.prepare('base-a', '', labels);
    await s.commit('base', 'base-a', labels);
    for (let i = 1; i < 100; i++) {
      await s.prepare(`l${i}-a`, 'base', labels);
      await s.commit(`l${i}`, `l${i}-a`, labels);
    }
    const info = s.stat('l50');
    const batch = [...s.list([], 100)][0]!;

    lines.push(await time('Stat: store.get (SQLite + JSON.parse labels)', n, () => store.get('l50')));
    lines.push(await time('Stat: snapshotter.stat', n, () => s.stat('l50')));
    lines.push(await time('Stat: protobuf encode of the response (generated code)', n, () => StatSnapshotResponse.encode({ info: infoToPb(info) }).finish()));
    lines.push(await time('Stat: response encoding as served (cached Info bytes)', n, () => encodeInfoField([infoToPb(info)])));
    lines.push(await time('gRPC: do-nothing unary call (grpc-js server, same process)', n, () => noop.call()));
    lines.push(await time("gRPC: do-nothing unary call (strata's server, same process)", n, () => noopStrata.call()));
    lines.push(await time('Stat over the socket (same process)', n, () => client.stat('l50')));
    lines.push(await time('List(100): snapshotter.list', n / 4, () => [...s.list([], 100)]));
    lines.push(await time('List(100): protobuf encode (generated code)', n / 4, () => ListSnapshotsResponse.encode({ info: batch.map(infoToPb) }).finish()));
    lines.push(await time('List(100): response encoding as served (cached Info bytes)', n / 4, () => encodeInfoField(batch.map(infoToPb))));
    const encoded = ListSnapshotsResponse.encode({ info: batch.map(infoToPb) }).finish();
    lines.push(await time('List(100): protobuf decode (client side)', n / 4, () => ListSnapshotsResponse.decode(encoded)));
    lines.push(await time('List(100) over the socket (same process)', n / 4, () => client.list()));
    const fsyncFile = path.join(base, 'fsync');
    const fd = fs.openSync(fsyncFile, 'w');
    lines.push(await time('bare: 4 KiB write + fdatasync (same fs)', n / 10, () => {
      fs.writeSync(fd, Buffer.alloc(4096), 0, 4096, 0);
      fs.fdatasyncSync(fd);
    }));
    fs.closeSync(fd);
    lines.push(await time('SQLite: one write transaction (setLabels, synchronous=NORMAL)', n / 10, () => store.setLabels(store.get('l50')!.id, labels)));
    lines.push(await time('Prepare: snapshotter (no gRPC)', n / 10, (i) => s.prepare(`p${i}-a`, 'base', labels)));
    lines.push(await time('Commit: snapshotter (no gRPC; one synced transaction)', n / 10, (i) => s.commit(`p${i}`, `p${i}-a`, labels)));
    lines.push(await time('Prepare+Commit: snapshotter (no gRPC)', n / 10, async (i) => {
      await s.prepare(`pc${i}-a`, 'base', labels);
      await s.commit(`pc${i}`, `pc${i}-a`, labels);
    }));
    lines.push(await time('Prepare+Commit over the socket (same process)', n / 10, async (i) => {
      await client.prepare(`gpc${i}-a`, 'base', labels);
      await client.commit(`gpc${i}`, `gpc${i}-a`, labels);
    }));
    lines.push(await time('Remove: snapshotter (row delete + queue, no gRPC)', n / 10, async (i) => s.remove(`pc${i}`)));
    // The background reclaim shares the daemon's event loop: how much does a big reclaim slow other calls?
    await s.cleanup();
    await s.prepare('big', 'base', {});
    const bigDir = path.join(daemon.ctx.config.root, 'snapshots', String(s.ref('big').id), 'fs');
    fillTree(bigDir, 20_000, 200);
    await s.remove('big');
    let during = 0;
    const statDuring = await time('Stat over the socket while 20000 files are reclaimed', n, async (i) => {
      if (store.pendingReclaims().length > 0) during++;
      await client.stat('l50');
    }, 0);
    statDuring.what += ` (${during} of ${n} calls during it)`;
    lines.push(statDuring);
  } finally {
    noop.close();
    noopStrata.close();
    client.close();
    await daemon.stop('profile done');
    fs.rmSync(base, { recursive: true, force: true });
  }
  process.stdout.write(table(['LAYER', 'P50', 'P99', 'CPU/OP'], lines.map((l) => [l.what, humanMicros(l.p50), humanMicros(l.p99), humanMicros(l.cpuPerOp)])));
}

main().catch((e: unknown) => {
  process.stderr.write(`profile: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
