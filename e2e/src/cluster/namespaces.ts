/**
 * Network, mount and UTS namespaces of the simulated hosts, following the
 * verified recipe in shared/notes/cluster-harness.md (nsenter + unshare with
 * pinned namespaces; never `ip netns exec`, which hides cgroup v1 mounts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ClusterLayout, HostLayout } from './layout';
import { run } from './run';

/** The pin directory must be a private mount so pins don't propagate (P7). */
export async function ensurePinDir(nsDir: string): Promise<void> {
  fs.mkdirSync(nsDir, { recursive: true });
  if (!isMountPoint(nsDir)) {
    await run(['mount', '--bind', nsDir, nsDir]);
    await run(['mount', '--make-private', nsDir]);
  }
}

/** Mount points of the calling (root) mount namespace, as [target, source]. */
export function rootMounts(): Array<{ target: string; source: string }> {
  const out: Array<{ target: string; source: string }> = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (f.length < 7 || sep < 0) continue;
    const target = unescapeMount(f[4] ?? '');
    out.push({ target, source: f[sep + 2] ?? '' });
  }
  return out;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function isMountPoint(dir: string): boolean {
  const abs = path.resolve(dir);
  return rootMounts().some((m) => m.target === abs);
}

/** Creates the netns; fails if it already exists (used to claim a slot atomically). */
export async function addNetns(name: string): Promise<void> {
  await run(['ip', 'netns', 'add', name]);
}

export async function createSwitch(layout: ClusterLayout): Promise<void> {
  const sw = layout.switchNetns;
  await run(['ip', '-n', sw, 'link', 'set', 'lo', 'up']);
  await run(['ip', '-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
  await run(['ip', '-n', sw, 'link', 'set', 'br0', 'up']);
}

async function plugIntoSwitch(
  layout: ClusterLayout,
  netns: string,
  switchSide: string,
  address: string,
): Promise<void> {
  const sw = layout.switchNetns;
  await run(['ip', '-n', sw, 'link', 'add', switchSide, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
  await run(['ip', '-n', sw, 'link', 'set', switchSide, 'master', 'br0', 'up']);
  await run(['ip', '-n', netns, 'link', 'set', 'lo', 'up']);
  await run(['ip', '-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
  await run(['ip', '-n', netns, 'link', 'set', 'eth0', 'up']);
}

/** The control service's netns: on the bridge, plus a /30 veth to the root netns for the test process. */
export async function createControlNetns(layout: ClusterLayout): Promise<void> {
  const ns = layout.controlNetns;
  await addNetns(ns);
  await plugIntoSwitch(layout, ns, 'vctl', layout.controlBridgeAddress);
  await run(['ip', 'link', 'add', layout.rootVeth, 'type', 'veth', 'peer', 'name', 'root0', 'netns', ns]);
  await run(['ip', 'addr', 'add', `${layout.rootAddress}/30`, 'dev', layout.rootVeth]);
  await run(['ip', 'link', 'set', layout.rootVeth, 'up']);
  await run(['ip', '-n', ns, 'addr', 'add', `${layout.controlRootAddress}/30`, 'dev', 'root0']);
  await run(['ip', '-n', ns, 'link', 'set', 'root0', 'up']);
}

export async function createHostNetns(layout: ClusterLayout, host: HostLayout): Promise<void> {
  await addNetns(host.netns);
  await plugIntoSwitch(layout, host.netns, host.vethSwitchSide, host.address);
}

/** Takes the host's link down or up: a network partition with every process still running. */
export async function setHostLink(host: HostLayout, up: boolean): Promise<void> {
  await run(['ip', '-n', host.netns, 'link', 'set', 'eth0', up ? 'up' : 'down']);
}

/**
 * Creates and pins the host's mount + UTS namespaces from inside its netns.
 * Inside: drop copies of other clusters' and other tests' mounts (P6), a private
 * tmpfs /run (P4: own /run/docker/plugins and containerd), a private /etc/docker
 * (P5: own daemon ID), and a netns-correct sysfs that keeps the cgroup v1 tree (P1).
 */
export async function createHostMountNs(host: HostLayout): Promise<void> {
  const etcDocker = path.join(host.dir, 'etc-docker');
  fs.mkdirSync(etcDocker, { recursive: true });
  fs.mkdirSync('/etc/docker', { recursive: true });
  for (const pin of [host.mntPin, host.utsPin]) fs.writeFileSync(pin, '');
  const dropped = rootMounts()
    .filter((m) => m.target !== '/' && (/^\/(tmp|run\/netns)(\/|$)/.test(m.target) || m.source.startsWith('/dev/loop')))
    .map((m) => m.target)
    .sort()
    .reverse();
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const script = [
    `hostname ${q(host.hostname)}`,
    `for m in ${dropped.map(q).join(' ')}; do umount -l "$m" 2>/dev/null || true; done`,
    `mount -t tmpfs -o mode=755 tmpfs-${host.netns} /run`,
    'mkdir -p /run/docker/plugins /run/lock /run/.cg',
    `mount --bind ${q(etcDocker)} /etc/docker`,
    'mount --rbind /sys/fs/cgroup /run/.cg',
    `mount -t sysfs sysfs-${host.netns} /sys`,
    'mount --move /run/.cg /sys/fs/cgroup',
    'rmdir /run/.cg',
  ].join('\n');
  await run(
    [
      'nsenter',
      `--net=/run/netns/${host.netns}`,
      '--',
      'unshare',
      `--mount=${host.mntPin}`,
      `--uts=${host.utsPin}`,
      '--propagation',
      'private',
      'sh',
      '-ec',
      script,
    ],
    { timeoutMs: 20_000 },
  );
}

/** argv prefix that runs a command inside the host (net + mount + UTS namespaces). */
export function inHost(host: HostLayout): string[] {
  return ['nsenter', `--net=/run/netns/${host.netns}`, `--mount=${host.mntPin}`, `--uts=${host.utsPin}`, '--'];
}

export function inNetns(netns: string): string[] {
  return ['nsenter', `--net=/run/netns/${netns}`, '--'];
}

/** Unpins a host's mount + UTS namespaces; they vanish once no process uses them. */
export async function releaseHostMountNs(host: HostLayout): Promise<void> {
  for (const pin of [host.mntPin, host.utsPin]) {
    if (isMountPoint(pin)) await run(['umount', pin], { check: false });
    if (isMountPoint(pin)) await run(['umount', '-l', pin], { check: false });
  }
}

export async function deleteNetns(name: string): Promise<void> {
  if (fs.existsSync(`/run/netns/${name}`)) await run(['ip', 'netns', 'del', name], { check: false });
}

export async function deleteRootVeth(name: string): Promise<void> {
  if (fs.existsSync(`/sys/class/net/${name}`)) await run(['ip', 'link', 'del', name], { check: false });
}
