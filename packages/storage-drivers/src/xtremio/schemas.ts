/**
 * The XtremIO driver's options (agent.yml `dataset:` with backend: xtremio) and the wire schemas of
 * the parts of the XMS REST API v2 (/api/json/v2/types/…) it uses. Every answer is parsed with
 * these; unknown fields are dropped. Field names as in the XtremIO REST API guide and as OpenStack
 * Cinder's XtremIO driver (cinder/volume/drivers/dell_emc/xtremio.py) reads them.
 */
import { z } from 'zod';

export const XtremioDriverOptionsSchema = z
  .object({
    backend: z.literal('xtremio').optional(),
    /** The XMS address, e.g. https://xms.example.com (the API is under /api/json/v2/types). */
    xms_url: z.url(),
    username: z.string().min(1),
    password: z.string(),
    /** In a multi-cluster XMS: the cluster's name (sent as cluster-name / cluster-id). */
    xtremio_cluster_name: z.string().min(1).optional(),
    verify_peer: z.boolean().default(true),
    verify_ca_path: z.string().min(1).optional(),
    /** Volumes are named flocker_<cluster_id>_… and only volumes of this cluster are listed. */
    cluster_id: z
      .string()
      .regex(/^[A-Za-z0-9-]{1,40}$/, 'cluster_id must be 1-40 letters, digits or dashes (it is part of volume names)'),
    /** This host's iSCSI initiator name (IQN); default: InitiatorName= in initiator_name_file. */
    initiator_iqn: z.string().min(1).optional(),
    initiator_name_file: z.string().min(1).default('/etc/iscsi/initiatorname.iscsi'),
    /** The iscsiadm program (open-iscsi). */
    iscsiadm_path: z.string().min(1).default('iscsiadm'),
    /** Where udev names SCSI disks by WWN (wwn-0x<naa>). */
    device_by_id_dir: z.string().min(1).default('/dev/disk/by-id'),
    /** The target group LUNs are mapped through. */
    target_group: z.string().min(1).default('Default'),
    /** One HTTP request's longest wait. */
    request_timeout_seconds: z.number().positive().default(60),
    /** Attempts of one request on transient failures (connection errors, 5xx, system_is_busy), the first included. */
    request_attempts: z.number().int().min(1).max(20).default(6),
    /** Longest wait for an operation as a whole (a create's recovery, a device to appear or go). */
    operation_timeout_seconds: z.number().positive().default(120),
  })
  .strict();

export type XtremioDriverOptionsInput = z.input<typeof XtremioDriverOptionsSchema>;
export type XtremioDriverOptions = z.output<typeof XtremioDriverOptionsSchema>;

/**
 * An object id as XMS writes references: [guid, name, index]
 * (Cinder: XTREMIO_OID_NAME = 1, XTREMIO_OID_INDEX = 2; test fixture `typ2id` … `["a91e…", name, index]`).
 */
export const ObjectIdSchema = z.tuple([z.string(), z.string(), z.number().int()]);

/**
 * A volume's `content`. vol-size is a decimal string in KiB (Cinder's manage_existing_get_size divides
 * it by units.Mi to get GiB; its test fixture has 'vol-size': '1000000' → 1 GiB). naa-name is the
 * LUN's NAA identifier (the WWN the host sees).
 */
export const VolumeContentSchema = z.object({
  name: z.string(),
  index: z.number().int(),
  'vol-size': z.union([z.string(), z.number()]).transform((s) => Number(s)),
  'naa-name': z.string().default(''),
});
export type VolumeContent = z.infer<typeof VolumeContentSchema>;

/**
 * A snapshot (a volume with an ancestor): ancestor-vol-id is the source's oid (Cinder's test_manage_snapshot
 * fixture; manage_existing reads ancestor-vol-id[XTREMIO_OID_NAME]). creation-time as the array gives it.
 */
export const SnapshotContentSchema = VolumeContentSchema.extend({
  'ancestor-vol-id': ObjectIdSchema.nullish(),
  'creation-time': z.string().optional(),
});
export type SnapshotContent = z.infer<typeof SnapshotContentSchema>;

/** GET …/types/<type>?name=… or …/<type>/<index>: {"content": {...}}. */
export const contentOf = <T extends z.ZodType>(s: T) => z.object({ content: s });

/** A lun-map (Client4.find_lunmap reads `lun-maps` with full=1, filtered on vol-name and ig-name). */
export const LunMapSchema = z.object({
  index: z.number().int(),
  'vol-name': z.string(),
  'ig-name': z.string(),
  lun: z.number().int(),
});
export type LunMap = z.infer<typeof LunMapSchema>;

/** An initiator (Cinder reads ig-id[XTREMIO_OID_NAME] to find its initiator group). */
export const InitiatorSchema = z.object({
  index: z.number().int(),
  'port-address': z.string(),
  'ig-id': ObjectIdSchema,
});

export const InitiatorGroupSchema = z.object({ index: z.number().int(), name: z.string() });

/** POST answers: {"links": [{"href": "https://host/api/json/v2/types/<type>/<index>", "rel": "self"}]}. */
export const CreatedSchema = z.object({ links: z.array(z.object({ href: z.string() })).min(1) });

/** Error bodies: {"message": "obj_not_found", "error_code": 400} (Cinder test_clone_volume_too_many_objs). */
export const XmsErrorSchema = z.object({ message: z.string(), error_code: z.number().optional() });

/** A cluster's content (Cinder check_for_setup_error: sys-sw-version "4.0.0-…"). */
export const ClusterContentSchema = z.object({
  name: z.string(),
  'sys-sw-version': z.string(),
  'ud-ssd-space': z.union([z.string(), z.number()]).optional(),
  'ud-ssd-space-in-use': z.union([z.string(), z.number()]).optional(),
});

/** An iSCSI portal (Cinder _get_iscsi_properties: ip-addr "10.205.68.5/16", ip-port, port-address = target IQN). */
export const IscsiPortalSchema = z.object({
  'ip-addr': z.string(),
  'ip-port': z.number().int(),
  'port-address': z.string(),
});
export type IscsiPortal = z.infer<typeof IscsiPortalSchema>;
