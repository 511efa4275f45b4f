#!/usr/bin/env node
/** `strata`: the daemon's entry point. */
import { parseArgs } from 'node:util';
import { isStrataError } from '../core/errors';
import { createLogger } from '../core/log';
import { DEFAULTS, loadConfig } from '../daemon/config';
import { startDaemon } from '../daemon/serve';

const USAGE = `usage: strata serve [options]

Serves containerd's snapshots API (and strata's own services) on a unix socket.

options:
  --root DIR         where snapshots and metadata live (default ${DEFAULTS.root})
  --address PATH     the gRPC socket (default ${DEFAULTS.address})
  --driver NAME      overlay | native | btrfs | zfs | devmapper | auto (default: overlay where it works, else native)
  --config FILE      a TOML configuration file (flags override it)
  --log-level LEVEL  debug | info | warn | error (default info)
  --plugin-socket P  the Docker volume plugin socket ("" disables it; default ${DEFAULTS.volumes.pluginSocket})
`;

async function serve(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      root: { type: 'string' },
      address: { type: 'string' },
      driver: { type: 'string' },
      config: { type: 'string' },
      'log-level': { type: 'string' },
      'plugin-socket': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const cfg = loadConfig(values.config, {
    root: values.root,
    address: values.address,
    driver: values.driver,
    logLevel: values['log-level'],
    pluginSocket: values['plugin-socket'],
  });
  const log = createLogger(cfg.logLevel);
  const daemon = await startDaemon(cfg, log);
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => void daemon.stop(sig));
  }
  await daemon.stopped;
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'serve':
      return serve(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      process.stderr.write(`strata: unknown command ${JSON.stringify(cmd)}\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    const msg = isStrataError(e) ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e);
    process.stderr.write(`strata: ${msg}\n`);
    process.exit(1);
  },
);
