/**
 * A stand-in for open-iscsi's `iscsiadm`, for tests on a kernel without an iSCSI initiator. It
 * replaces exactly this: the iSCSI session to the array and the SCSI disks the kernel makes for the
 * LUNs mapped to this host, and udev's /dev/disk/by-id/wwn-0x<naa> links to them. Here a "login" or
 * "rescan" asks the simulator which LUNs this initiator sees and attaches each LUN's data file to a
 * loop device, linked as <by-id dir>/wwn-0x<naa>; a LUN no longer mapped loses its link and loop
 * device; a grown LUN gets its new capacity (losetup -c). Everything above it (the driver's device
 * discovery, mkfs, mounts, the agent, the plugin) runs for real.
 *
 * Environment: XIO_SIM_URL (the simulator), XIO_INITIATOR_FILE (InitiatorName=…, as
 * /etc/iscsi/initiatorname.iscsi), XIO_BY_ID_DIR, XIO_STATE_DIR (its session record).
 * Invocations (as the driver makes them; output in iscsiadm's formats):
 *   -m session | -m session --rescan | -m discovery -t sendtargets -p <portal>
 *   -m node -T <target> -p <portal> --login | --logout
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';
import { parseInitiatorName } from '../names';

const run = promisify(execFile);
const NO_OBJS_FOUND = 21; // open-iscsi ISCSI_ERR_NO_OBJS_FOUND

const HostViewSchema = z.object({
  target: z.string(),
  portal: z.string(),
  luns: z.array(
    z.object({
      naa: z.string().regex(/^[0-9a-f]+$/),
      lun: z.number(),
      file: z.string(),
      bytes: z.number(),
      /** A read-only snapshot's LUN is write-protected: a read-only loop device. */
      readOnly: z.boolean().optional(),
    }),
  ),
});
type HostView = z.infer<typeof HostViewSchema>;

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

async function iqn(): Promise<string> {
  const name = parseInitiatorName(await fs.readFile(env('XIO_INITIATOR_FILE'), 'utf8'));
  if (name === null) throw new Error('no InitiatorName= in the initiator file');
  return name;
}

async function hostView(): Promise<HostView> {
  const res = await fetch(`${env('XIO_SIM_URL')}/_sim/host?iqn=${encodeURIComponent(await iqn())}`);
  return HostViewSchema.parse(await res.json());
}

const sessionFile = (): string => path.join(env('XIO_STATE_DIR'), 'sessions.json');

async function sessions(): Promise<string[]> {
  try {
    return z.array(z.string()).parse(JSON.parse(await fs.readFile(sessionFile(), 'utf8')));
  } catch {
    return [];
  }
}

async function backingFile(device: string): Promise<string | null> {
  try {
    const { stdout } = await run('losetup', ['--list', '--noheadings', '--output', 'BACK-FILE', device]);
    return stdout.trim() || null;
  } catch {
    return null;
  }
}

/** Makes the by-id links and loop devices match what the target presents to this initiator. */
async function sync(): Promise<void> {
  const dir = env('XIO_BY_ID_DIR');
  await fs.mkdir(dir, { recursive: true });
  const view = (await sessions()).length > 0 ? await hostView() : { luns: [] as HostView['luns'] };
  const wanted = new Map(view.luns.map((l) => [`wwn-0x${l.naa}`, l]));
  for (const entry of await fs.readdir(dir)) {
    if (!entry.startsWith('wwn-0x') || wanted.has(entry)) continue;
    const link = path.join(dir, entry);
    const device = await fs.readlink(link).catch(() => null);
    await fs.rm(link, { force: true });
    // The LUN went away: the kernel drops the disk (a mounted file system sees I/O errors; here autoclear).
    if (device !== null) await run('losetup', ['-d', device]).catch(() => undefined);
  }
  for (const [entry, lun] of wanted) {
    const link = path.join(dir, entry);
    const device = await fs.readlink(link).catch(() => null);
    if (device !== null && (await backingFile(device)) === lun.file) {
      await run('losetup', ['-c', device]); // a rescan picks up a grown LUN
      continue;
    }
    const { stdout } = await run('losetup', [
      ...(lun.readOnly === true ? ['--read-only'] : []),
      '--find',
      '--show',
      lun.file,
    ]);
    const tmp = `${link}.${process.pid}.tmp`;
    await fs.symlink(stdout.trim(), tmp);
    await fs.rename(tmp, link);
  }
}

async function main(argv: string[]): Promise<number> {
  const has = (flag: string): boolean => argv.includes(flag);
  const arg = (flag: string): string | undefined => argv[argv.indexOf(flag) + 1];
  const mode = arg('-m');
  if (mode === 'session') {
    const open = await sessions();
    if (has('--rescan') || has('-R')) {
      if (open.length === 0) {
        process.stderr.write('iscsiadm: No session found.\n');
        return NO_OBJS_FOUND;
      }
      await sync();
      return 0;
    }
    if (open.length === 0) {
      process.stderr.write('iscsiadm: No active sessions.\n');
      return NO_OBJS_FOUND;
    }
    open.forEach((t, i) => process.stdout.write(`tcp: [${i + 1}] 127.0.0.1:3260,1 ${t} (non-flash)\n`));
    return 0;
  }
  if (mode === 'discovery') {
    const view = await hostView();
    process.stdout.write(`${view.portal},1 ${view.target}\n`);
    return 0;
  }
  if (mode === 'node') {
    const target = arg('-T') ?? '';
    const portal = arg('-p') ?? '';
    const open = await sessions();
    if (has('--login')) {
      await fs.mkdir(env('XIO_STATE_DIR'), { recursive: true });
      if (!open.includes(target)) await fs.writeFile(sessionFile(), JSON.stringify([...open, target]));
      process.stdout.write(`Logging in to [iface: default, target: ${target}, portal: ${portal}] (multiple)\n`);
      process.stdout.write(`Login to [iface: default, target: ${target}, portal: ${portal}] successful.\n`);
      await sync();
      return 0;
    }
    if (has('--logout')) {
      await fs.writeFile(sessionFile(), JSON.stringify(open.filter((t) => t !== target)));
      await sync();
      return 0;
    }
  }
  process.stderr.write(`iscsiadm stand-in: unsupported invocation: ${argv.join(' ')}\n`);
  return 7; // ISCSI_ERR_INVAL
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`iscsiadm stand-in: ${String(e)}\n`);
    process.exit(1);
  },
);
