/** What every service, listener and background task of the running daemon shares. */
import type { Driver } from '../../drivers/driver';
import type { SnapshotterApi } from '../core/api';
import type { Logger } from '../core/log';
import type { MetadataStore } from '../metadata/store';
import type { Config } from './config';

export interface DaemonContext {
  config: Config;
  store: MetadataStore;
  driver: Driver;
  snapshotter: SnapshotterApi;
  log: Logger;
}

/** Something the daemon started that must stop (drain) on SIGTERM. */
export interface Closable {
  close(): Promise<void>;
}
