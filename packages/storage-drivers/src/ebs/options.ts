/** The `dataset:` section of agent.yml for `backend: aws`, validated with zod. */
import { z } from 'zod';

const awsId = (prefix: string) => new RegExp(`^${prefix}-[0-9a-f]{8,17}$`);

export const ebsDatasetConfigSchema = z
  .object({
    backend: z.literal('aws'),
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'region must look like "us-east-1"'),
    /** Availability zone volumes are created in; the agent's instances must be in it. */
    zone: z.string().regex(/^[a-z]{2}-[a-z0-9-]*[a-z]$/, 'zone must look like "us-east-1a"'),
    access_key_id: z.string().min(1).optional(),
    secret_access_key: z.string().min(1).optional(),
    session_token: z.string().min(1).optional(),
    /** EC2 endpoint override, for emulators (moto) or VPC endpoints. */
    endpoint: z.url().optional(),
    /** Tags every volume; only volumes carrying this cluster's tag are listed or touched. */
    cluster_id: z.string().min(1).max(255),
    /** Override for this instance's id; default: from the instance metadata service (IMDSv2). */
    instance_id: z.string().regex(awsId('i'), 'instance_id must look like "i-0123456789abcdef0"').optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if ((c.access_key_id === undefined) !== (c.secret_access_key === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message:
          'access_key_id and secret_access_key must be given together (or neither, to use the default AWS credential chain: environment, shared files, instance role)',
      });
    }
    if (c.session_token !== undefined && c.access_key_id === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['session_token'],
        message: 'session_token needs access_key_id and secret_access_key',
      });
    }
    if (!c.zone.startsWith(c.region)) {
      ctx.addIssue({ code: 'custom', path: ['zone'], message: `zone "${c.zone}" is not in region "${c.region}"` });
    }
  });

export type EbsDatasetConfig = z.infer<typeof ebsDatasetConfigSchema>;
