/**
 * Docker's volume plugin protocol (VolumeDriver, plugin API v1.2): request and response JSON shapes, as Docker's
 * docs and its volume-driver client define them. Field names are Docker's (capitalised) on the wire.
 */

export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';

export interface CreateRequest {
  Name: string;
  Opts?: Record<string, string> | null;
}

export interface NameRequest {
  Name: string;
}

export interface MountRequest {
  Name: string;
  /** Unique per mount caller (a container); Unmount carries the same ID. */
  ID: string;
}

export interface ErrResponse {
  Err: string;
}

export interface DockerVolume {
  Name: string;
  Mountpoint: string;
  /** RFC 3339 */
  CreatedAt?: string;
  /** Free-form facts `docker volume inspect` shows. */
  Status?: Record<string, unknown>;
}

export interface GetResponse extends ErrResponse {
  Volume?: DockerVolume;
}

export interface ListResponse extends ErrResponse {
  Volumes: DockerVolume[];
}

export interface MountResponse extends ErrResponse {
  Mountpoint: string;
}

export interface CapabilitiesResponse {
  Capabilities: { Scope: 'local' | 'global' };
}

export interface ActivateResponse {
  Implements: string[];
}
