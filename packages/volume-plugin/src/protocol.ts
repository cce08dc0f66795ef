/**
 * Docker volume plugin protocol (legacy v1 / managed v2 share it): request and
 * response shapes, and the interface the behaviour sits behind. See
 * docs: https://docs.docker.com/engine/extend/plugins_volume/
 */
import { z } from 'zod';

/** Docker sends no body, `{}` or `null` for some calls; all three mean "no fields". */
const Empty = z.object({}).loose();

export const CreateRequest = z.object({
  Name: z.string(),
  Opts: z.record(z.string(), z.string()).nullable().optional(),
});
export const NameRequest = z.object({ Name: z.string() });
/** Engines older than 1.12 send no ID; treat it as the empty ID. */
export const MountRequest = z.object({ Name: z.string(), ID: z.string().optional().default('') });
export const EmptyRequest = Empty;

export type CreateRequest = z.infer<typeof CreateRequest>;
export type NameRequest = z.infer<typeof NameRequest>;
export type MountRequest = z.infer<typeof MountRequest>;

export interface VolumeInfo {
  Name: string;
  Mountpoint?: string;
  CreatedAt?: string;
  Status?: Record<string, string | number | boolean | null>;
}

export interface MountResponse {
  Mountpoint: string;
}
export interface PathResponse {
  Mountpoint?: string;
}
export interface GetResponse {
  Volume: VolumeInfo;
}
export interface ListResponse {
  Volumes: VolumeInfo[];
}
export interface CapabilitiesResponse {
  Capabilities: { Scope: 'global' | 'local' };
}

/** Everything Docker can ask of a volume driver; the HTTP layer only decodes, calls and encodes. */
export interface VolumeDriverBackend {
  create(req: CreateRequest): Promise<void>;
  remove(req: NameRequest): Promise<void>;
  mount(req: MountRequest): Promise<MountResponse>;
  unmount(req: MountRequest): Promise<void>;
  path(req: NameRequest): Promise<PathResponse>;
  get(req: NameRequest): Promise<GetResponse>;
  list(): Promise<ListResponse>;
  capabilities(): Promise<CapabilitiesResponse>;
}

/** An error whose message is shown to the Docker user as is. */
export class VolumePluginError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'VolumePluginError';
  }
}

export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1.1+json';
