/** Preparing a unix socket path: parent created, a stale socket replaced, a live one refused. */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { failedPrecondition } from '../core/errors';

function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(socketPath);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export async function prepareSocketPath(socketPath: string, what: string): Promise<void> {
  fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o711 });
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch {
    return;
  }
  if (!st.isSocket()) throw failedPrecondition(`${socketPath} exists and is not a socket; refusing to replace it`);
  if (await answers(socketPath)) throw failedPrecondition(`${what} ${socketPath} is in use by a running process`);
  fs.unlinkSync(socketPath); // left behind by a process that died
}
