import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { isStrataError, toStrataError } from '../../src/core/errors';
import { sizeLimitFromLabels, validateLabels } from '../../src/core/labels';
import { DEFAULTS, loadConfig, parseConfig } from '../../src/daemon/config';

describe('configuration', () => {
  it('has defaults that need no file', () => {
    const cfg = loadConfig(undefined, {});
    assert.equal(cfg.root, '/var/lib/strata');
    assert.equal(cfg.address, '/run/strata/strata.sock');
    assert.equal(cfg.driver, 'auto');
    assert.deepEqual(cfg, DEFAULTS);
  });

  it('reads TOML, and flags override it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-cfg-'));
    const file = path.join(dir, 'strata.toml');
    fs.writeFileSync(file, 'root = "/srv/strata"\ndriver_name = "zfs"\nlog_level = "debug"\n[driver.zfs]\ndataset = "tank/strata"\n[volumes]\nplugin_socket = ""\n');
    const cfg = loadConfig(file, { address: '/tmp/x.sock' });
    assert.equal(cfg.root, '/srv/strata');
    assert.equal(cfg.driver, 'zfs');
    assert.equal(cfg.logLevel, 'debug');
    assert.equal(cfg.address, '/tmp/x.sock');
    assert.deepEqual(cfg.drivers.zfs, { dataset: 'tank/strata' });
    assert.equal(cfg.volumes.pluginSocket, '');
    assert.equal(loadConfig(file, { driver: 'native' }).driver, 'native');
    fs.rmSync(dir, { recursive: true });
  });

  it('refuses unknown settings, drivers and malformed TOML clearly', () => {
    const bad = (text: string, re: RegExp) =>
      assert.throws(() => parseConfig(text, 'f.toml'), (e: unknown) => isStrataError(e, 'InvalidArgument') && re.test((e as Error).message));
    bad('rooot = "/x"', /unknown setting "rooot"/);
    bad('driver = "ext9"', /unknown driver "ext9"/);
    bad('root = ', /f\.toml/);
    bad('log_level = "loud"', /log level/);
    assert.throws(() => loadConfig(undefined, { driver: 'nope' }), /--driver: unknown driver/);
  });
});

describe('labels', () => {
  it('accepts containerd-sized labels and refuses larger ones', () => {
    validateLabels({ 'containerd.io/snapshot.ref': 'sha256:' + 'a'.repeat(64) });
    validateLabels({ k: 'v'.repeat(4095) });
    assert.throws(() => validateLabels({ k: 'v'.repeat(4096) }), (e: unknown) => isStrataError(e, 'InvalidArgument'));
  });

  it('parses the max-size label', () => {
    assert.equal(sizeLimitFromLabels({}), null);
    assert.equal(sizeLimitFromLabels({ 'containerd.io/snapshot/max-size': '67108864' }), 67108864);
    for (const v of ['-1', '0', '12MB', '1e9', '99999999999999999999']) {
      assert.throws(() => sizeLimitFromLabels({ 'containerd.io/snapshot/max-size': v }), (e: unknown) => isStrataError(e, 'InvalidArgument'));
    }
  });
});

describe('error mapping', () => {
  it('maps a full disk and a quota hit (which Node 20 calls UNKNOWN) to ResourceExhausted', () => {
    const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 });
    const edquot = Object.assign(new Error('UNKNOWN: unknown error, write'), { code: 'UNKNOWN', errno: -122 });
    assert.equal(toStrataError(enospc, 'writing').code, 'ResourceExhausted');
    assert.equal(toStrataError(edquot, 'writing').code, 'ResourceExhausted');
    assert.equal(toStrataError(new Error('boom'), 'writing').code, 'Internal');
  });
});
