/** snapctl's pure parts: table/size/age formatting, global flags, dispatch, tree drawing, mount(8) lines. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { humanAge, humanMicros, humanSize, keyValues, shellQuote, table } from '../../src/cli/format';
import { extractGlobals, findCommand } from '../../src/cli/snapctl';
import { buildForest, drawForest } from '../../src/cli/commands/tree';
import { shellCommands } from '../../src/cli/commands/mounts';
import { commandFor, commands } from '../../src/cli/commands/index';
import type { Command } from '../../src/cli/command';
import type { Info } from '../../src/core/types';

test('table aligns columns and does not pad the last one', () => {
  assert.equal(table(['NAME', 'KIND'], [['a', 'committed'], ['longer-name', 'view']]), 'NAME          KIND\na             committed\nlonger-name   view\n');
  // Code points, not UTF-16 units, so non-ASCII names line up.
  assert.equal(table(['N', 'K'], [['é€', 'x']]), 'N    K\né€   x\n');
});

test('keyValues aligns values and continues lists under an empty key', () => {
  assert.equal(keyValues([['Name', 'a'], ['Labels', 'x=1'], ['', 'y=2']]), 'Name:   a\nLabels: x=1\n        y=2\n');
});

test('humanSize uses IEC units with three significant digits', () => {
  assert.equal(humanSize(0), '0 B');
  assert.equal(humanSize(1023), '1023 B');
  assert.equal(humanSize(1024), '1 KiB');
  assert.equal(humanSize(1536), '1.5 KiB');
  assert.equal(humanSize(12.34 * 1024 * 1024), '12.3 MiB');
  assert.equal(humanSize(500 * 1024 ** 3), '500 GiB');
});

test('humanAge reads like docker ps', () => {
  const now = new Date('2025-01-01T12:00:00Z');
  assert.equal(humanAge(new Date(now.getTime() - 200), now), 'just now');
  assert.equal(humanAge(new Date(now.getTime() - 1000), now), '1 second ago');
  assert.equal(humanAge(new Date(now.getTime() - 3 * 60_000), now), '3 minutes ago');
  assert.equal(humanAge(new Date(now.getTime() - 2 * 86_400_000), now), '2 days ago');
  assert.equal(humanAge(new Date(0), now), '-');
});

test('humanMicros picks µs, ms or s', () => {
  assert.equal(humanMicros(42.4), '42 µs');
  assert.equal(humanMicros(1234), '1.23 ms');
  assert.equal(humanMicros(2_500_000), '2.50 s');
});

test('shellQuote leaves plain words and quotes the rest', () => {
  assert.equal(shellQuote('lowerdir=/a/b:/c,upperdir=/d'), 'lowerdir=/a/b:/c,upperdir=/d');
  assert.equal(shellQuote('a b'), "'a b'");
  assert.equal(shellQuote("it's"), "'it'\\''s'");
  assert.equal(shellQuote(''), "''");
});

test('global flags come out from anywhere before --', () => {
  assert.deepEqual(extractGlobals(['ls', '--json', '--address', '/s', '-f', 'x']), { json: true, help: false, address: '/s', rest: ['ls', '-f', 'x'] });
  assert.deepEqual(extractGlobals(['--address=/s', 'rm', '--', '--json']), { json: false, help: false, address: '/s', rest: ['rm', '--', '--json'] });
  assert.throws(() => extractGlobals(['ls', '--address']), /needs a value/);
});

test('dispatch picks the longest matching command name', () => {
  const mk = (name: string[]): Command => ({ name, summary: '', usage: '', run: () => Promise.resolve(0) });
  const all = [mk(['volume']), mk(['volume', 'create']), mk(['ls'])];
  assert.deepEqual(findCommand(all, ['volume', 'create', 'x'])?.name, ['volume', 'create']);
  assert.deepEqual(findCommand(all, ['volume', 'x'])?.name, ['volume']);
  assert.equal(findCommand(all, ['lsx']), undefined);
});

test('the registry holds the core commands, each name once', () => {
  const names = commands().map((c) => c.name.join(' '));
  for (const n of ['ls', 'tree', 'info', 'mounts', 'usage', 'prepare', 'view', 'commit', 'rm', 'label', 'cleanup', 'mount', 'umount', 'status']) {
    assert.ok(names.includes(n), `${n} registered`);
  }
  assert.equal(new Set(names).size, names.length, 'no duplicate command names');
});

test('loading one command module finds what loading them all finds', () => {
  const all = commands();
  for (const c of all) {
    const words = [...c.name, 'ARG', '--flag'];
    assert.equal(commandFor(words), findCommand(all, words), `${c.name.join(' ')}: its module is named ${c.name.join('-')}`);
  }
  assert.equal(commandFor(['volume']), undefined, 'a group word alone is left to the full lookup (it prints the group)');
  assert.equal(commandFor(['nope']), undefined);
});

test('tree draws the parent/child forest; a parent left out by a filter makes a root', () => {
  const i = (name: string, parent: string, kind: Info['kind']): Info => ({ name, parent, kind, created: new Date(0), updated: new Date(0), labels: {} });
  const forest = buildForest([i('a', '', 'committed'), i('b', 'a', 'committed'), i('c', 'b', 'active'), i('v', 'a', 'view'), i('o', 'gone', 'active')]);
  assert.equal(drawForest(forest), 'a (committed)\n├── b (committed)\n│   └── c (active)\n└── v (view)\no (active)\n');
  assert.equal(drawForest([]), '');
});

test('mounts become mount(8) lines: overlay with -t, bind through options', () => {
  assert.equal(
    shellCommands([{ type: 'overlay', source: 'overlay', options: ['index=off', 'lowerdir=/r/1/fs:/r/2/fs'] }], '/mnt'),
    'mount -t overlay -o index=off,lowerdir=/r/1/fs:/r/2/fs overlay /mnt\n',
  );
  assert.equal(shellCommands([{ type: 'bind', source: '/r/my dir', options: ['ro', 'rbind'] }], '/t'), "mount -o ro,rbind '/r/my dir' /t\n");
  assert.equal(shellCommands([{ type: 'bind', source: '/r', options: ['ro'] }], '/t'), 'mount -o bind,ro /r /t\n');
});
