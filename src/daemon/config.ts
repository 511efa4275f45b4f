/**
 * The daemon's configuration: embedded defaults, then the TOML file (--config), then flags. Everything has a
 * default so `strata serve` with no arguments runs.
 *
 *   root = "/var/lib/strata"
 *   address = "/run/strata/strata.sock"
 *   driver = "auto"                 # overlay | native | btrfs | zfs | devmapper | auto
 *   log_level = "info"
 *   [driver.zfs]                    # driver-specific settings, passed to the driver as they are
 *   dataset = "tank/strata"
 *   [volumes]
 *   plugin_socket = "/run/docker/plugins/strata.sock"   # "" disables the Docker volume plugin
 */
import * as fs from 'node:fs';
import type { DriverConfig, DriverName } from '../../drivers/driver';
import { isDriverName } from '../../drivers/index';
import { invalidArgument } from '../core/errors';
import type { Level } from '../core/log';

// smol-toml ships a CommonJS build under its "require" export; its types are declared for ESM only.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { parse: parseToml } = require('smol-toml') as typeof import('smol-toml', { with: { 'resolution-mode': 'import' } });

export interface Config {
  root: string;
  address: string;
  driver: DriverName | 'auto';
  logLevel: Level;
  /** `[driver.<name>]` tables. */
  drivers: Partial<Record<DriverName, DriverConfig>>;
  volumes: { pluginSocket: string };
}

export const DEFAULTS: Config = {
  root: '/var/lib/strata',
  address: '/run/strata/strata.sock',
  driver: 'auto',
  logLevel: 'info',
  drivers: {},
  volumes: { pluginSocket: '/run/docker/plugins/strata.sock' },
};

export interface ConfigOverrides {
  root?: string;
  address?: string;
  driver?: string;
  logLevel?: string;
  pluginSocket?: string;
}

const LEVELS: readonly string[] = ['debug', 'info', 'warn', 'error'];

function asString(v: unknown, key: string): string {
  if (typeof v !== 'string') throw invalidArgument(`config: ${key} must be a string`);
  return v;
}

function checkDriver(v: string, where: string): DriverName | 'auto' {
  if (v === 'auto' || isDriverName(v)) return v;
  throw invalidArgument(`${where}: unknown driver "${v}" (overlay, native, btrfs, zfs, devmapper or auto)`);
}

function checkLevel(v: string, where: string): Level {
  if (LEVELS.includes(v)) return v as Level;
  throw invalidArgument(`${where}: log level must be one of ${LEVELS.join(', ')}`);
}

/** Parses a TOML config file's text over the defaults. */
export function parseConfig(text: string, source = 'config'): Config {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    throw invalidArgument(`${source}: ${(e as Error).message}`);
  }
  const cfg: Config = structuredClone(DEFAULTS);
  for (const [key, value] of Object.entries(doc)) {
    switch (key) {
      case 'root':
        cfg.root = asString(value, key);
        break;
      case 'address':
        cfg.address = asString(value, key);
        break;
      case 'driver':
        if (typeof value === 'string') {
          cfg.driver = checkDriver(value, source);
        } else if (typeof value === 'object' && value !== null) {
          for (const [name, table] of Object.entries(value)) {
            if (!isDriverName(name)) throw invalidArgument(`${source}: unknown driver table [driver.${name}]`);
            cfg.drivers[name] = { ...(table as DriverConfig) };
          }
        }
        break;
      case 'driver_name':
        cfg.driver = checkDriver(asString(value, key), source);
        break;
      case 'log_level':
        cfg.logLevel = checkLevel(asString(value, key), source);
        break;
      case 'volumes': {
        const v = value as Record<string, unknown>;
        if (v.plugin_socket !== undefined) cfg.volumes.pluginSocket = asString(v.plugin_socket, 'volumes.plugin_socket');
        break;
      }
      default:
        throw invalidArgument(`${source}: unknown setting "${key}"`);
    }
  }
  return cfg;
}

/**
 * The effective configuration. A TOML document cannot set both `driver = "x"` and a `[driver.x]` table, so the
 * file may name the driver with `driver_name` when it also has driver tables.
 */
export function loadConfig(configPath: string | undefined, overrides: ConfigOverrides): Config {
  const cfg = configPath ? parseConfig(fs.readFileSync(configPath, 'utf8'), configPath) : structuredClone(DEFAULTS);
  if (overrides.root) cfg.root = overrides.root;
  if (overrides.address) cfg.address = overrides.address;
  if (overrides.driver) cfg.driver = checkDriver(overrides.driver, '--driver');
  if (overrides.logLevel) cfg.logLevel = checkLevel(overrides.logLevel, '--log-level');
  if (overrides.pluginSocket !== undefined) cfg.volumes.pluginSocket = overrides.pluginSocket;
  return cfg;
}
