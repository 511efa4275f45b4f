/** Where the daemon listens, apart from the clients so the CLI can name it without loading gRPC. */
export const DEFAULT_ADDRESS = '/run/strata/strata.sock';

/** The socket address from a flag, then STRATA_ADDRESS, then the default. */
export function resolveAddress(flag?: string): string {
  return flag || process.env.STRATA_ADDRESS || DEFAULT_ADDRESS;
}
