/**
 * Run by overlay.test.ts inside `unshare -U -r -m` (a user namespace mapping only our uid): the overlay driver
 * must detect that trusted.* xattrs are out of reach and mount with userxattr. Prints one JSON line.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHarness, fileContents, tryWrite } from './harness';

async function main(): Promise<void> {
  const root = process.argv[2]!;
  const h = await createHarness('overlay', { root });
  try {
    const status = await h.driver.status();
    const base = await h.create('active');
    let dir = await h.mount(base);
    fs.writeFileSync(path.join(dir, 'a'), 'a');
    fs.mkdirSync(path.join(dir, 'd'));
    fs.writeFileSync(path.join(dir, 'd/old'), 'o');
    await h.unmount(dir);
    const c1 = await h.commit(base);
    const a2 = await h.create('active', c1);
    const options = (await h.driver.mounts(a2))[0]!.options;
    dir = await h.mount(a2);
    fs.unlinkSync(path.join(dir, 'a'));
    fs.rmSync(path.join(dir, 'd'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'd'));
    fs.writeFileSync(path.join(dir, 'd/new'), 'n');
    await h.unmount(dir);
    const c2 = await h.commit(a2);
    const v = await h.create('view', c2);
    dir = await h.mount(v);
    const files = fileContents(dir);
    const write = tryWrite(path.join(dir, 'x'));
    await h.unmount(dir);
    process.stdout.write(JSON.stringify({ userxattr: status.userxattr, options, files, write }) + '\n');
  } finally {
    await h.cleanup();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
