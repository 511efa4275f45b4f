/**
 * The gRPC services served on strata's socket. containerd's Snapshots service first; strata's own services
 * (proto/strata/v1/*) after it. Each module exports `register(server, ctx)`.
 */
import type * as grpc from '@grpc/grpc-js';
import type { DaemonContext } from '../daemon/context';

/** Where services register: strata's server (h2/server.ts) and, in tools, grpc-js's Server both fit. */
export interface ServiceRegistry {
  addService(service: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): void;
}

export interface ServiceModule {
  register(server: ServiceRegistry, ctx: DaemonContext): void;
}

export function serviceModules(): ServiceModule[] {
  return [
    require('./snapshots') as ServiceModule,
    require('./volumes') as ServiceModule,
    require('./admin') as ServiceModule,
    require('./layers') as ServiceModule,
  ];
}
