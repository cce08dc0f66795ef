/**
 * EMC ScaleIO / Dell PowerFlex: the `dataset:` options (backend: scaleio) and the wire schemas of the
 * REST gateway's answers the driver reads (field names as in Dell's goscaleio types/v1/types.go and
 * the JSON fixtures of OpenStack Cinder's PowerFlex driver tests). Unknown fields are dropped.
 */
import { z } from 'zod';

export const ScaleIoOptionsSchema = z
  .object({
    backend: z.literal('scaleio').optional(),
    /** The REST gateway, e.g. https://gateway.example:443 (the API lives under /api). */
    gateway_url: z.url(),
    username: z.string().min(1),
    password: z.string().min(1),
    verify_peer: z.boolean().default(true),
    verify_ca_path: z.string().min(1).optional(),
    /** Volumes are named with a tag of this (ScaleIO volumes carry no metadata). */
    cluster_id: z.string().min(1),
    /** The storage pool of volumes without a profile (its id, e.g. 12a3b4c500000000). */
    storage_pool_id: z.string().min(1),
    /** Flocker profile → storage pool id (gold/silver/bronze → e.g. SSD, hybrid, HDD pools). */
    profile_storage_pools: z.record(z.string(), z.string().min(1)).default({}),
    /** ThinProvisioned or ThickProvisioned. */
    volume_type: z.enum(['ThinProvisioned', 'ThickProvisioned']).default('ThinProvisioned'),
    /** This host's SDC: by GUID (drv_cfg --query_guid) or IP; one is needed unless drv_cfg is installed. */
    sdc_guid: z.string().min(1).optional(),
    sdc_ip: z.string().min(1).optional(),
    /** Where the SDC's udev rules name mapped volumes emc-vol-<systemId>-<volumeId>. */
    device_by_id_dir: z.string().min(1).default('/dev/disk/by-id'),
    /** Longest wait for a device to appear or go, and for a lost create to be found. */
    operation_timeout_seconds: z.number().positive().default(120),
    /** Per-request timeout. */
    request_timeout_seconds: z.number().positive().default(30),
  })
  .superRefine((o, ctx) => {
    const pools = new Set(Object.values(o.profile_storage_pools));
    if (pools.has(o.storage_pool_id))
      ctx.addIssue({
        code: 'custom',
        path: ['profile_storage_pools'],
        message: 'a profile may not use the default storage_pool_id (the profile is read back from the pool)',
      });
    if (pools.size !== Object.keys(o.profile_storage_pools).length)
      ctx.addIssue({
        code: 'custom',
        path: ['profile_storage_pools'],
        message: 'each profile needs its own storage pool (the profile is read back from the pool)',
      });
  });

export type ScaleIoOptionsInput = z.input<typeof ScaleIoOptionsSchema>;
export type ScaleIoOptions = z.output<typeof ScaleIoOptionsSchema>;

/** Error body: goscaleio types.Error {message, httpStatusCode, errorCode}; Cinder's fixtures {errorCode, message}. */
export const ScaleIoErrorSchema = z.object({
  message: z.string(),
  errorCode: z.number().int().optional(),
  httpStatusCode: z.number().int().optional(),
});

export const MappedSdcInfoSchema = z.object({
  sdcId: z.string(),
  sdcIp: z.string().nullish(),
  /** ReadWrite or ReadOnly (goscaleio MappedSdcInfo.accessMode). */
  accessMode: z.string().nullish(),
});

export const VolumeSchema = z.object({
  id: z.string(),
  name: z.string().nullish(),
  sizeInKb: z.number().int().nonnegative(),
  storagePoolId: z.string(),
  volumeType: z.string().optional(),
  mappedSdcInfo: z.array(MappedSdcInfoSchema).nullish(),
  /** Seconds since the epoch (goscaleio Volume.CreationTime). */
  creationTime: z.number().int().nonnegative().optional(),
  /** Set on snapshots (and on clones, which are snapshots of snapshots): the volume it was taken of. */
  ancestorVolumeId: z.string().nullish(),
});
export type ScaleIoVolume = z.infer<typeof VolumeSchema>;

export const SdcSchema = z.object({
  id: z.string(),
  name: z.string().nullish(),
  sdcGuid: z.string().nullish(),
  sdcIp: z.string().nullish(),
  sdcIps: z.array(z.string()).nullish(),
});
export type ScaleIoSdc = z.infer<typeof SdcSchema>;

export const SystemSchema = z.object({ id: z.string() });

export const CreatedSchema = z.object({ id: z.string() });

/** goscaleio types.SnapshotVolumesResp; Cinder's test_create_snapshot.py {'volumeIdList': [...], 'snapshotGroupId': ...}. */
export const SnapshotVolumesRespSchema = z.object({
  volumeIdList: z.array(z.string()).min(1),
  snapshotGroupId: z.string().nullish(),
});
