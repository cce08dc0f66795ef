/**
 * The host side of an XtremIO attach over iSCSI, as open-iscsi does it: discover the array's
 * targets and log in once (`iscsiadm -m discovery -t sendtargets`, `-m node --login`), afterwards
 * rescan the sessions for newly mapped LUNs (`-m session --rescan`); udev names each SCSI disk
 * `/dev/disk/by-id/wwn-0x<naa>`. Removing a LUN: delete the SCSI device (sysfs), then unmap.
 * Calls are serialised: one iscsiadm at a time per driver.
 */
import { pollUntil, systemClock, type Clock } from '@flocker/runtime';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { StorageError } from '../BlockDeviceApi';
import { formatCommand, type ExecFn } from '../exec';
import { wwnLinkName } from './names';
import type { IscsiPortal } from './schemas';

/** open-iscsi's exit code for "no records/sessions found" (ISCSI_ERR_NO_OBJS_FOUND). */
export const ISCSI_ERR_NO_OBJS_FOUND = 21;

/** Target IQNs of the sessions `iscsiadm -m session` lists ("tcp: [1] 10.0.0.1:3260,1 iqn.… (non-flash)"). */
export function parseSessions(stdout: string): string[] {
  const out: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^\S+:\s+\[\d+\]\s+\S+\s+(\S+)/.exec(line.trim());
    if (m) out.push(m[1]);
  }
  return out;
}

/** "10.205.68.5/16" and 3260 → "10.205.68.5:3260" (Cinder _get_iscsi_properties). */
export function portalAddress(p: IscsiPortal): string {
  return `${p['ip-addr'].split('/')[0]}:${p['ip-port']}`;
}

export interface IscsiHostOptions {
  readonly exec: ExecFn;
  readonly iscsiadm: string;
  readonly byIdDir: string;
  readonly timeoutMs: number;
  readonly clock?: Clock;
  readonly sysfsRoot?: string;
}

export class IscsiHost {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly clock: Clock;

  constructor(private readonly o: IscsiHostOptions) {
    this.clock = o.clock ?? systemClock;
  }

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const next = this.queue.then(f, f);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async iscsiadm(args: string[], okCodes: number[] = [0]): Promise<string> {
    const r = await this.o.exec(this.o.iscsiadm, args);
    if (!okCodes.includes(r.exitCode))
      throw new StorageError(
        'BACKEND_ERROR',
        `${formatCommand(this.o.iscsiadm, args)} failed (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim()}`,
      );
    return r.stdout;
  }

  /** The block device (resolved) of this LUN when this host sees it, else null. */
  async device(naa: string): Promise<string | null> {
    const link = path.join(this.o.byIdDir, wwnLinkName(naa));
    try {
      const stat = await fs.stat(link);
      return stat.isBlockDevice() ? await fs.realpath(link) : null;
    } catch {
      return null;
    }
  }

  /** Logs in to the array's targets where no session is open yet, else rescans; waits for the LUN's device. */
  async connect(portals: readonly IscsiPortal[], naa: string, volume: string): Promise<string> {
    await this.serial(async () => {
      const sessions = parseSessions(await this.iscsiadm(['-m', 'session'], [0, ISCSI_ERR_NO_OBJS_FOUND]));
      const missing = portals.filter((p) => !sessions.includes(p['port-address']));
      for (const p of missing) {
        await this.iscsiadm(['-m', 'discovery', '-t', 'sendtargets', '-p', portalAddress(p)]);
        await this.iscsiadm(['-m', 'node', '-T', p['port-address'], '-p', portalAddress(p), '--login']);
      }
      if (missing.length < portals.length) await this.iscsiadm(['-m', 'session', '--rescan']);
    });
    return pollUntil(() => this.device(naa).then((d) => d ?? undefined), {
      timeoutMs: this.o.timeoutMs,
      backoff: { initialMs: 50, maxMs: 1000, jitter: true },
      clock: this.clock,
      onTimeout: () => {
        throw new StorageError(
          'BACKEND_ERROR',
          `volume ${volume} is mapped to this host but ${path.join(this.o.byIdDir, wwnLinkName(naa))} did not appear within ${this.o.timeoutMs} ms (iSCSI session up? multipath?)`,
          volume,
        );
      },
    });
  }

  /** Before unmapping: deletes the SCSI device (where it is one), so the kernel lets go of it cleanly. */
  async removeDevice(device: string): Promise<void> {
    const del = path.join(this.o.sysfsRoot ?? '/sys', 'block', path.basename(device), 'device', 'delete');
    await this.serial(async () => {
      await fs.writeFile(del, '1').catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw new StorageError('BACKEND_ERROR', `removing ${device}: ${e.message}`);
      });
    });
  }

  /** After unmapping: rescans and waits until the LUN's link is gone (a short wait; the unmap already fenced it). */
  async forget(naa: string): Promise<void> {
    await this.serial(() => this.iscsiadm(['-m', 'session', '--rescan'], [0, ISCSI_ERR_NO_OBJS_FOUND]));
    await pollUntil(async () => ((await this.device(naa)) === null ? true : undefined), {
      timeoutMs: Math.min(this.o.timeoutMs, 10_000),
      backoff: { initialMs: 50, maxMs: 500, jitter: true },
      clock: this.clock,
      onTimeout: () => true,
    });
  }

  /** Rescans: the LUN's new capacity after an extend. */
  async rescan(): Promise<void> {
    await this.serial(() => this.iscsiadm(['-m', 'session', '--rescan'], [0, ISCSI_ERR_NO_OBJS_FOUND]));
  }
}
