/** The Docker VolumeDriver protocol over a real unix socket, against a real engine on a plain directory root. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/core/log';
import { MetadataStore } from '../../src/metadata/store';
import { DirVolumeBackend } from '../../src/volumes/backends/dir';
import { VolumeEngine } from '../../src/volumes/engine';
import { startPluginServer, type PluginServer } from '../../src/volumes/plugin/server';
import { PLUGIN_CONTENT_TYPE } from '../../src/volumes/plugin/protocol';
import { tmpRoot } from './harness';

interface Reply {
  status: number;
  contentType: string;
  body: Record<string, unknown>;
}

function call(socketPath: string, route: string, body: string | object | undefined, method = 'POST'): Promise<Reply> {
  const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath, path: route, method, headers: { 'Content-Type': PLUGIN_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) } },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type']), body: JSON.parse(data) as Record<string, unknown> }),
        );
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

describe('docker volume plugin protocol', () => {
  let root = '';
  let store: MetadataStore | undefined;
  let engine: VolumeEngine;
  let server: PluginServer | undefined;
  let sock = '';

  before(async () => {
    root = tmpRoot();
    store = new MetadataStore(path.join(root, 'metadata.db'));
    engine = await VolumeEngine.open({
      root,
      store,
      backend: new DirVolumeBackend(path.join(fs.realpathSync(root), 'volumes'), async () => 'test: plain root'),
      log: silentLogger,
    });
    sock = path.join(root, 'plugins', 'strata.sock'); // the directory does not exist yet: the server makes it
    // A stale socket from a dead process must be replaced: a child listens there and dies without cleaning up.
    fs.mkdirSync(path.dirname(sock));
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    assert.ok(fs.lstatSync(sock).isSocket(), 'a stale socket is in place');
    server = await startPluginServer(engine, sock, silentLogger);
  });
  after(async () => {
    await server?.close();
    store?.close();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it('activates as a VolumeDriver with local scope and Docker content type', async () => {
    const a = await call(sock, '/Plugin.Activate', undefined);
    assert.equal(a.status, 200);
    assert.equal(a.contentType, PLUGIN_CONTENT_TYPE);
    assert.deepEqual(a.body, { Implements: ['VolumeDriver'] });
    assert.deepEqual((await call(sock, '/VolumeDriver.Capabilities', {})).body, { Capabilities: { Scope: 'local' } });
  });

  it('creates, gets, lists, mounts, unmounts and removes', async () => {
    let r = await call(sock, '/VolumeDriver.Create', { Name: 'pv1', Opts: { 'label.app': 'db' } });
    assert.deepEqual([r.status, r.body], [200, { Err: '' }]);
    // Docker's local driver semantics: the same create again is fine.
    r = await call(sock, '/VolumeDriver.Create', { Name: 'pv1', Opts: { 'label.app': 'db' } });
    assert.deepEqual(r.body, { Err: '' });
    r = await call(sock, '/VolumeDriver.Get', { Name: 'pv1' });
    const vol = r.body.Volume as { Name: string; Mountpoint: string; CreatedAt: string; Status: { labels: Record<string, string> } };
    assert.equal(vol.Name, 'pv1');
    assert.equal(vol.Mountpoint, engine.path('pv1'));
    assert.ok(!Number.isNaN(Date.parse(vol.CreatedAt)));
    assert.deepEqual(vol.Status.labels, { app: 'db' });
    r = await call(sock, '/VolumeDriver.List', {});
    assert.deepEqual(r.body, { Volumes: [{ Name: 'pv1', Mountpoint: vol.Mountpoint, CreatedAt: vol.CreatedAt }], Err: '' });
    r = await call(sock, '/VolumeDriver.Mount', { Name: 'pv1', ID: 'abc123' });
    assert.deepEqual(r.body, { Mountpoint: vol.Mountpoint, Err: '' });
    r = await call(sock, '/VolumeDriver.Path', { Name: 'pv1' });
    assert.deepEqual(r.body, { Mountpoint: vol.Mountpoint, Err: '' });
    r = await call(sock, '/VolumeDriver.Remove', { Name: 'pv1' });
    assert.equal(r.status, 500);
    assert.match(String(r.body.Err), /in use/);
    assert.ok(fs.existsSync(vol.Mountpoint));
    r = await call(sock, '/VolumeDriver.Unmount', { Name: 'pv1', ID: 'abc123' });
    assert.deepEqual(r.body, { Err: '' });
    r = await call(sock, '/VolumeDriver.Remove', { Name: 'pv1' });
    assert.deepEqual(r.body, { Err: '' });
    assert.equal(fs.existsSync(vol.Mountpoint), false);
    r = await call(sock, '/VolumeDriver.Get', { Name: 'pv1' });
    assert.match(String(r.body.Err), /not found/);
  });

  it('takes snapshot-of and clone-of options', async () => {
    await call(sock, '/VolumeDriver.Create', { Name: 'src', Opts: {} });
    fs.writeFileSync(path.join(engine.path('src'), 'f'), 'v1');
    let r = await call(sock, '/VolumeDriver.Create', { Name: 'src-snap', Opts: { 'snapshot-of': 'src' } });
    assert.deepEqual(r.body, { Err: '' });
    r = await call(sock, '/VolumeDriver.Create', { Name: 'src-clone', Opts: { 'clone-of': 'src', labels: 'a=1,b=2' } });
    assert.deepEqual(r.body, { Err: '' });
    assert.equal(engine.inspect('src-snap').readonly, true);
    assert.deepEqual(engine.inspect('src-clone').labels, { a: '1', b: '2' });
    assert.equal(fs.readFileSync(path.join(engine.path('src-clone'), 'f'), 'utf8'), 'v1');
    for (const n of ['src-snap', 'src-clone', 'src']) assert.deepEqual((await call(sock, '/VolumeDriver.Remove', { Name: n })).body, { Err: '' });
  });

  it('answers bad input with Err and changes nothing', async () => {
    await call(sock, '/VolumeDriver.Create', { Name: 'keep', Opts: { 'label.x': '1' } });
    const listBefore = JSON.stringify(engine.list());
    const cases: Array<[string, string | object, RegExp]> = [
      ['/VolumeDriver.Create', '{"Name": "bad', /malformed JSON/],
      ['/VolumeDriver.Create', '[1,2]', /JSON object/],
      ['/VolumeDriver.Create', { Name: 42 }, /"Name" must be a string/],
      ['/VolumeDriver.Create', { Name: '../etc' }, /separators/],
      ['/VolumeDriver.Create', { Name: 'ok1', Opts: { size: 'lots' } }, /not a size/],
      ['/VolumeDriver.Create', { Name: 'ok1', Opts: { colour: 'red' } }, /unknown option "colour"/],
      ['/VolumeDriver.Create', { Name: 'ok1', Opts: { size: '64M' } }, /size limits are not available/],
      ['/VolumeDriver.Create', { Name: 'ok1', Opts: { 'clone-of': 'missing' } }, /not found/],
      ['/VolumeDriver.Create', { Name: 'ok1', Opts: 'size=1' }, /"Opts" must be an object/],
      ['/VolumeDriver.Create', { Name: 'keep', Opts: { 'label.x': '2' } }, /already exists/],
      ['/VolumeDriver.Mount', { Name: 'keep' }, /"ID" must be a string/],
      ['/VolumeDriver.Mount', { Name: 'ghost', ID: 'c' }, /not found/],
      ['/VolumeDriver.Remove', { Name: 'ghost' }, /not found/],
      ['/VolumeDriver.Path', {}, /"Name" must be a string/],
    ];
    for (const [route, body, re] of cases) {
      const r = await call(sock, route, body);
      assert.ok(r.status === 400 || r.status === 500, `${route} ${JSON.stringify(body)} → ${r.status}`);
      assert.match(String(r.body.Err), re, `${route} ${JSON.stringify(body)}`);
    }
    const unknown = await call(sock, '/VolumeDriver.Frobnicate', {});
    assert.equal(unknown.status, 404);
    assert.equal((await call(sock, '/VolumeDriver.List', undefined, 'GET')).status, 404);
    assert.equal(JSON.stringify(engine.list()), listBefore);
    assert.deepEqual(engine.inspect('keep').labels, { x: '1' });
    assert.deepEqual(engine.inspect('keep').refs, {});
  });
});
