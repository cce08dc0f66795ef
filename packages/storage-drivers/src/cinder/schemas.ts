/**
 * Wire schemas for the parts of Keystone v3, Cinder v3 and Nova we use, and the
 * CinderDriver options (the `dataset:` section of agent.yml with backend: openstack).
 * Every response is parsed with these; unknown fields are dropped.
 */
import { z } from 'zod';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// ---------------------------------------------------------------- options

export const CinderDriverOptionsSchema = z
  .object({
    backend: z.enum(['openstack', 'rackspace']).optional(),
    region: z.string().min(1).optional(),
    /**
     * noauth: a Cinder with auth_strategy = noauth (tests); needs cinder_url and project_id.
     * rackspace: Rackspace Identity v2.0 with an API key (username, api_key; auth_url defaults to Rackspace's).
     */
    auth_plugin: z.enum(['password', 'v3applicationcredential', 'noauth', 'rackspace']).default('password'),
    auth_url: z.url().optional(),
    username: z.string().min(1).optional(),
    user_id: z.string().min(1).optional(),
    password: z.string().optional(),
    user_domain_name: z.string().min(1).default('Default'),
    project_name: z.string().min(1).optional(),
    project_id: z.string().min(1).optional(),
    project_domain_name: z.string().min(1).default('Default'),
    application_credential_id: z.string().min(1).optional(),
    application_credential_secret: z.string().min(1).optional(),
    /** auth_plugin rackspace: the account's API key (RAX-KSKEY:apiKeyCredentials). */
    api_key: z.string().min(1).optional(),
    /** The catalog's service type of the block storage API: volumev3 (Keystone v3), volume with auth_plugin rackspace. */
    volume_service_type: z.string().min(1).optional(),
    /** Which catalog endpoint to use. */
    interface: z.enum(['public', 'internal', 'admin']).default('public'),
    verify_peer: z.boolean().default(true),
    verify_ca_path: z.string().min(1).optional(),
    /** Volumes are tagged with this and only volumes carrying it are listed. */
    cluster_id: z.string().min(1),
    /**
     * This node's instance id. nova mode: the Nova server UUID (default: asked from the metadata service).
     * cinder mode: a name for this host, sent as the connector's host (Cinder shows it as the attachment's host).
     */
    instance_id: z.string().min(1).max(255).optional(),
    /** nova: the node is a Nova server (os-volume_attachments). cinder: bare metal, Cinder attachments API (3.27+). */
    attach_mode: z.enum(['nova', 'cinder']).default('nova'),
    /** Cinder endpoint override (…/v3, without the project id); required with noauth. */
    cinder_url: z.url().optional(),
    /** Can the backend grow in-use volumes (Cinder 3.42)? If not, resize detaches, extends and re-attaches. */
    extend_attached: z.enum(['online', 'reattach']).default('online'),
    /** Flocker profile → Cinder volume type; a profile without an entry uses the type of the same name. */
    profile_volume_types: z.record(z.string(), z.string()).default({}),
    availability_zone: z.string().min(1).optional(),
    /** Host connector sent with Cinder attachments (cinder mode); its host is always instance_id. */
    connector: z
      .object({
        ip: z.string().min(1).optional(),
        initiator: z.string().min(1).optional(),
      })
      .default({}),
    /** Where NFS exports named in connection info are mounted when not mounted yet (cinder mode). */
    nfs_mount_base: z.string().min(1).default('/var/lib/flocker/cinder-nfs'),
    /** nova mode: where udev names disks by serial. */
    device_by_id_dir: z.string().min(1).default('/dev/disk/by-id'),
    /** Longest wait for Cinder to finish one operation (create, attach, detach, delete, extend). */
    operation_timeout_seconds: z.number().positive().default(300),
    /**
     * Bound on one HTTP request to Cinder, Keystone, Rackspace identity or the metadata service as a whole
     * (connect, headers, body); a stalled connection then fails the request (retried with backoff when safe).
     */
    request_timeout_seconds: z.number().positive().default(60),
  })
  .superRefine((o, ctx) => {
    const need = (field: keyof typeof o, why: string) => {
      if (o[field] === undefined)
        ctx.addIssue({ code: 'custom', path: [field], message: `${field} is required ${why}` });
    };
    if (o.auth_plugin === 'noauth') {
      need('cinder_url', 'with auth_plugin noauth');
      need('project_id', 'with auth_plugin noauth');
    } else if (o.auth_plugin === 'rackspace') {
      need('username', 'with auth_plugin rackspace');
      need('api_key', 'with auth_plugin rackspace');
      need('region', 'with auth_plugin rackspace (DFW, ORD, IAD, LON, HKG, SYD)');
    } else {
      need('auth_url', `with auth_plugin ${o.auth_plugin}`);
    }
    if (o.auth_plugin === 'password') {
      if (o.username === undefined && o.user_id === undefined) need('username', 'with auth_plugin password');
      need('password', 'with auth_plugin password');
      if (o.project_name === undefined && o.project_id === undefined) need('project_name', 'with auth_plugin password');
    }
    if (o.auth_plugin === 'v3applicationcredential') {
      need('application_credential_id', 'with auth_plugin v3applicationcredential');
      need('application_credential_secret', 'with auth_plugin v3applicationcredential');
    }
    if (o.attach_mode === 'cinder') need('instance_id', 'with attach_mode cinder');
    if (o.attach_mode === 'nova' && o.instance_id !== undefined && !UUID.test(o.instance_id)) {
      ctx.addIssue({
        code: 'custom',
        path: ['instance_id'],
        message: 'instance_id must be the Nova server UUID with attach_mode nova',
      });
    }
  });

export type CinderDriverOptionsInput = z.input<typeof CinderDriverOptionsSchema>;
export type CinderDriverOptions = z.output<typeof CinderDriverOptionsSchema>;

// ---------------------------------------------------------------- Keystone

const EndpointSchema = z.object({
  interface: z.string(),
  region: z.string().nullish(),
  region_id: z.string().nullish(),
  url: z.string(),
});

export const CatalogEntrySchema = z.object({
  type: z.string(),
  name: z.string().optional(),
  endpoints: z.array(EndpointSchema),
});
export type CatalogEntry = z.infer<typeof CatalogEntrySchema>;

export const TokenResponseSchema = z.object({
  token: z.object({
    expires_at: z.string(),
    project: z.object({ id: z.string() }).optional(),
    catalog: z.array(CatalogEntrySchema).default([]),
  }),
});

// ---------------------------------------------------------------- Cinder

export const VolumeAttachmentSummarySchema = z.object({
  attachment_id: z.string().nullish(),
  server_id: z.string().nullish(),
  host_name: z.string().nullish(),
  volume_id: z.string().optional(),
  device: z.string().nullish(),
});

export const VolumeSchema = z.object({
  id: z.string(),
  status: z.string(),
  size: z.number().int().nonnegative(),
  name: z.string().nullish(),
  volume_type: z.string().nullish(),
  metadata: z.record(z.string(), z.string()).default({}),
  attachments: z.array(VolumeAttachmentSummarySchema).default([]),
  multiattach: z.boolean().optional(),
  /** The snapshot a volume was made from (issue 20). */
  snapshot_id: z.string().nullish(),
});
export type Volume = z.infer<typeof VolumeSchema>;

export const VolumeEnvelopeSchema = z.object({ volume: VolumeSchema });

export const VolumeListSchema = z.object({
  volumes: z.array(VolumeSchema),
  volumes_links: z.array(z.object({ rel: z.string(), href: z.string() })).optional(),
});

/** A volume snapshot (GET /snapshots/detail, POST /snapshots). */
export const SnapshotSchema = z.object({
  id: z.string(),
  status: z.string(),
  size: z.number().int().nonnegative(),
  volume_id: z.string(),
  created_at: z.string(),
  name: z.string().nullish(),
  metadata: z.record(z.string(), z.string()).default({}),
});
export type Snapshot = z.infer<typeof SnapshotSchema>;

export const SnapshotEnvelopeSchema = z.object({ snapshot: SnapshotSchema });

export const SnapshotListSchema = z.object({
  snapshots: z.array(SnapshotSchema),
  snapshots_links: z.array(z.object({ rel: z.string(), href: z.string() })).optional(),
});

/** Connection info as Cinder's attachments API returns it: the driver's `data` fields with driver_volume_type merged in. */
export const ConnectionInfoSchema = z.looseObject({
  driver_volume_type: z.string(),
  export: z.string().optional(),
  name: z.string().optional(),
  format: z.string().optional(),
  mount_point_base: z.string().optional(),
  device_path: z.string().optional(),
});
export type ConnectionInfo = z.infer<typeof ConnectionInfoSchema>;

export const AttachmentSchema = z.object({
  id: z.string(),
  status: z.string(),
  instance: z.string().nullish(),
  volume_id: z.string(),
  connection_info: ConnectionInfoSchema.nullish(),
  /**
   * Detail views only: when Cinder applied the connector (the POST /attachments that reserved with one), UTC
   * without a zone; '' or null before that. An attach mark proves a reservation only near this time (pendingHolder).
   */
  attached_at: z.string().nullish(),
});
export type Attachment = z.infer<typeof AttachmentSchema>;

export const AttachmentEnvelopeSchema = z.object({ attachment: AttachmentSchema });
export const AttachmentListSchema = z.object({ attachments: z.array(AttachmentSchema) });

/** Cinder and Nova faults: {"badRequest": {"code": 400, "message": "…"}}. */
export const FaultSchema = z.record(
  z.string(),
  z.object({ message: z.string().optional(), code: z.number().optional() }).loose(),
);

export const NovaVolumeAttachmentSchema = z.object({
  volumeAttachment: z.object({
    id: z.string().optional(),
    volumeId: z.string(),
    serverId: z.string().optional(),
    device: z.string().nullish(),
  }),
});

export function isUuid(s: string): boolean {
  return UUID.test(s);
}
