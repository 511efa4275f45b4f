/**
 * The Docker volume plugin: Docker's VolumeDriver protocol over HTTP on a unix socket in /run/docker/plugins/,
 * where dockerd discovers plugins by socket name (`-d strata` for strata.sock). Every call maps onto the volume
 * engine; failures answer HTTP 500 with `{"Err": message}` (400 for a body that is not the JSON asked for),
 * which dockerd shows to the user as the error.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import { StrataError, invalidArgument, isStrataError, toStrataError } from '../../core/errors';
import type { Logger } from '../../core/log';
import { prepareSocketPath } from '../../daemon/socket';
import type { VolumeEngine } from '../engine';
import type { Volume } from '../types';
import { requestFromOptions } from './options';
import {
  PLUGIN_CONTENT_TYPE,
  type ActivateResponse,
  type CapabilitiesResponse,
  type DockerVolume,
  type GetResponse,
  type ListResponse,
  type MountResponse,
} from './protocol';

/** Docker's requests are a name and a few options; anything bigger is not Docker. */
const MAX_BODY = 1 << 20;

type Body = Record<string, unknown>;
type Handler = (body: Body) => Promise<object> | object;

function str(body: Body, field: string): string {
  const v = body[field];
  if (typeof v !== 'string') throw invalidArgument(`request field "${field}" must be a string`);
  return v;
}

function toDocker(v: Volume, withStatus: boolean): DockerVolume {
  const out: DockerVolume = { Name: v.name, Mountpoint: v.path, CreatedAt: v.created.toISOString() };
  if (withStatus) {
    out.Status = {
      backend: v.backend,
      sizeLimit: v.sizeLimit,
      readonly: v.readonly,
      labels: v.labels,
      mounts: Object.keys(v.refs).length,
      ...(v.origin ? { origin: `${v.origin.kind} of ${v.origin.name}` } : {}),
    };
  }
  return out;
}

function sameRequest(existing: Volume, wanted: Record<string, string>): boolean {
  const a = existing.options;
  const keys = new Set([...Object.keys(a), ...Object.keys(wanted)]);
  for (const k of keys) if (a[k] !== wanted[k]) return false;
  return true;
}

export function handlers(engine: VolumeEngine): Record<string, Handler> {
  return {
    '/Plugin.Activate': (): ActivateResponse => ({ Implements: ['VolumeDriver'] }),
    '/VolumeDriver.Capabilities': (): CapabilitiesResponse => ({ Capabilities: { Scope: 'local' } }),
    '/VolumeDriver.Create': async (b) => {
      const name = str(b, 'Name');
      const opts = b.Opts;
      if (opts !== undefined && opts !== null && (typeof opts !== 'object' || Array.isArray(opts))) {
        throw invalidArgument('request field "Opts" must be an object');
      }
      const req = requestFromOptions(name, opts as Record<string, unknown> | null | undefined);
      try {
        await engine.create(req);
      } catch (e) {
        // Like Docker's local driver, creating what already exists the same way is not an error: dockerd may
        // ask again for a volume it lost track of.
        if (isStrataError(e, 'AlreadyExists') && sameRequest(engine.inspect(name), req.options ?? {})) return { Err: '' };
        throw e;
      }
      return { Err: '' };
    },
    '/VolumeDriver.Remove': async (b) => {
      await engine.remove(str(b, 'Name'));
      return { Err: '' };
    },
    '/VolumeDriver.Mount': (b): MountResponse => ({ Mountpoint: engine.mount(str(b, 'Name'), str(b, 'ID')), Err: '' }),
    '/VolumeDriver.Unmount': (b) => {
      engine.unmount(str(b, 'Name'), str(b, 'ID'));
      return { Err: '' };
    },
    '/VolumeDriver.Path': (b): MountResponse => ({ Mountpoint: engine.path(str(b, 'Name')), Err: '' }),
    '/VolumeDriver.Get': (b): GetResponse => {
      const v = engine.inspect(str(b, 'Name'));
      if (v.state !== 'ready') throw new StrataError('NotFound', `volume "${v.name}" is ${v.state}`);
      return { Volume: toDocker(v, true), Err: '' };
    },
    '/VolumeDriver.List': (): ListResponse => ({
      Volumes: engine.list().filter((v) => v.state === 'ready').map((v) => toDocker(v, false)),
      Err: '',
    }),
  };
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(invalidArgument(`request body exceeds ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseBody(raw: Buffer): Body {
  const text = raw.toString('utf8').trim();
  if (text === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw invalidArgument(`malformed JSON request: ${(e as Error).message}`);
  }
  if (v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw invalidArgument('request body must be a JSON object');
  return v as Body;
}

export interface PluginServer {
  readonly socketPath: string;
  close(): Promise<void>;
}

export async function startPluginServer(engine: VolumeEngine, socketPath: string, log: Logger): Promise<PluginServer> {
  const routes = handlers(engine);
  const plog = log.child({ component: 'docker-plugin' });
  const server = http.createServer((req, res) => {
    const send = (status: number, body: object): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'Content-Type': PLUGIN_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) });
      res.end(text);
    };
    const route = (req.url ?? '').split('?')[0] ?? '';
    const handler = routes[route];
    if (!handler || req.method !== 'POST') {
      // Docker treats 404 as "not implemented by this plugin", which is what it is.
      send(404, { Err: `strata's volume plugin has no ${req.method ?? ''} ${route}` });
      return;
    }
    void (async () => {
      try {
        const body = parseBody(await readBody(req));
        send(200, await handler(body));
        plog.debug('plugin call', { route });
      } catch (e) {
        const err = toStrataError(e, route);
        if (err.code === 'Internal') plog.error('plugin call failed', { route, err });
        else plog.info('plugin call refused', { route, code: err.code, err: err.message });
        send(err.code === 'InvalidArgument' ? 400 : 500, { Err: err.message });
      }
    })();
  });
  await prepareSocketPath(socketPath, 'docker plugin socket');
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  fs.chmodSync(socketPath, 0o660);
  plog.info('docker volume plugin listening', { socket: socketPath });
  return {
    socketPath,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      try {
        fs.unlinkSync(socketPath);
      } catch {
        /* already gone */
      }
    },
  };
}
