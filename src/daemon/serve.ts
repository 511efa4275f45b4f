/**
 * `strata serve`: open the root, pick and start the driver, recover what a crash left, serve the socket, and on
 * SIGTERM/SIGINT stop taking calls, let in-flight calls finish, and exit 0.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Driver, DriverName, DriverOptions } from '../../drivers/driver';
import { chooseDefaultDriver, loadDriverModule } from '../../drivers/index';
import { failedPrecondition } from '../core/errors';
import { createLogger, type Logger } from '../core/log';
import { Reclaimer } from '../core/reclaimer';
import { Snapshotter } from '../core/snapshotter';
import { MetadataStore } from '../metadata/store';
import { GrpcServer } from '../server/h2/server';
import { serviceModules } from '../server/services';
import type { Config } from './config';
import type { Closable, DaemonContext } from './context';
import { extensions } from './extensions';
import { prepareSocketPath } from './socket';
import { setUnpackMallocPolicy } from '../unpack/engine';
import { closeIdleWorkers } from '../unpack/worker-pool';

/** How long SIGTERM waits for in-flight calls before cutting them off. */
const DRAIN_TIMEOUT_MS = 30_000;

export interface RunningDaemon {
  ctx: DaemonContext;
  /** Resolves when the daemon has stopped. */
  stopped: Promise<void>;
  stop(reason: string): Promise<void>;
}

async function pickDriver(cfg: Config, store: MetadataStore, log: Logger): Promise<DriverName> {
  const opts: DriverOptions = { root: cfg.root, config: {} };
  const previous = store.getMeta('driver') as DriverName | undefined;
  let name: DriverName;
  if (cfg.driver !== 'auto') {
    name = cfg.driver;
    log.info('driver chosen by configuration', { driver: name });
  } else if (previous) {
    name = previous;
    log.info('driver chosen by the root', { driver: name, why: `${cfg.root} holds ${previous} snapshots` });
  } else {
    const choice = await chooseDefaultDriver(opts);
    name = choice.name;
    log.info('driver chosen automatically', { driver: name, why: choice.why });
  }
  if (previous && previous !== name) {
    throw failedPrecondition(`${cfg.root} holds snapshots of the ${previous} driver; it cannot be served by ${name} (use another --root)`);
  }
  return name;
}

export async function startDaemon(cfg: Config, log: Logger = createLogger(cfg.logLevel)): Promise<RunningDaemon> {
  setUnpackMallocPolicy();
  fs.mkdirSync(cfg.root, { recursive: true, mode: 0o711 });
  const root = fs.realpathSync(cfg.root);
  cfg = { ...cfg, root };
  const store = new MetadataStore(path.join(root, 'metadata.db'));
  const closables: Closable[] = [];
  let driver: Driver | undefined;
  try {
    const name = await pickDriver(cfg, store, log);
    const mod = loadDriverModule(name);
    const opts: DriverOptions = { root, config: cfg.drivers[name] ?? {} };
    const probe = await mod.probe(opts);
    if (!probe.ok) throw failedPrecondition(`the ${name} driver cannot work here: ${probe.reason ?? 'probe failed'}`);
    driver = mod.create(opts);
    await driver.init();
    store.setMeta('driver', name);

    const rolledBack = store.rollBackCreating();
    if (rolledBack.length > 0) log.warn('rolled back snapshots a crash left half-created', { ids: rolledBack });
    const reclaimer = new Reclaimer(store, driver, log.child({ task: 'reclaim' }));
    const snapshotter = new Snapshotter({ store, driver, reclaimer, log: log.child({ component: 'snapshotter' }) });
    const ctx: DaemonContext = { config: cfg, store, driver, snapshotter, log };

    // strata's own gRPC server, not grpc-js's: see src/server/h2/server.ts for why (per-call latency).
    const server = new GrpcServer({ maxReceiveMessageLength: 16 << 20, maxSendMessageLength: 16 << 20 });
    for (const m of serviceModules()) m.register(server, ctx);
    await prepareSocketPath(cfg.address, 'socket');
    await server.listen(cfg.address);
    fs.chmodSync(cfg.address, 0o660);
    for (const ext of extensions()) closables.push(await ext(ctx));
    reclaimer.kick(); // finish reclaims a previous run queued
    log.info('strata is serving', { address: cfg.address, root, driver: name, snapshots: store.counts() });

    let resolveStopped!: () => void;
    const stopped = new Promise<void>((r) => (resolveStopped = r));
    let stopping: Promise<void> | undefined;
    const stop = (reason: string): Promise<void> => {
      stopping ??= (async () => {
        log.info('stopping', { reason });
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            log.warn('in-flight calls did not finish in time; cutting them off', { ms: DRAIN_TIMEOUT_MS });
            server.forceShutdown();
            resolve();
          }, DRAIN_TIMEOUT_MS);
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        for (const c of closables.reverse()) await c.close().catch((e: unknown) => log.warn('extension did not close cleanly', { err: e as Error }));
        await reclaimer.stop();
        await closeIdleWorkers();
        await driver!.close();
        store.close();
        try {
          fs.unlinkSync(cfg.address);
        } catch {
          /* already gone */
        }
        log.info('stopped');
        resolveStopped();
      })();
      return stopping;
    };
    return { ctx, stopped, stop };
  } catch (e) {
    for (const c of closables.reverse()) await c.close().catch(() => undefined);
    await driver?.close().catch(() => undefined);
    store.close();
    throw e;
  }
}
