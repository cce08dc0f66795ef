// Cost of each flocker-syshelper request vs spawning the standard tool, interleaved (root: loop devices, mounts).
//   node packages/storage-drivers/scripts/syshelper-cost.js   (after npx tsc -b packages/storage-drivers; N=100 by default)
const D = require('node:path').resolve(__dirname, '..', 'dist');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs'), path = require('node:path'), os = require('node:os');
const { execFileExec } = require(D + '/exec.js');
const { attachLoop, detachLoop, LoopIoctls, isReadOnly } = require(D + '/losetup.js');
const { MountSyscalls } = require(D + '/mountHelper.js');
const { PoolLock } = require(D + '/PoolLock.js');
const { setImmutable } = require(D + '/immutable.js');
const N = Number(process.env.N || 100);
const now = () => Number(process.hrtime.bigint()) / 1e6;
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
const p90 = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length * 0.9)]; };
const res = {};
const rec = (k, v) => (res[k] ??= []).push(v);
async function timed(k, fn) { const t = now(); await fn(); rec(k, now() - t); }
(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-measure-'));
  const img = path.join(dir, 'disk.img');
  execFileSync('truncate', ['-s', '64M', img]); execFileSync('mkfs.ext4', ['-q', img]);
  const mnt = path.join(dir, 'mnt'); fs.mkdirSync(mnt);
  const ioctls = new LoopIoctls(); const ms = new MountSyscalls();
  const lockH = new PoolLock(path.join(dir, 'pool.lock'), { mode: 'helper' });
  const lockF = new PoolLock(path.join(dir, 'pool.lock'), { mode: 'flock' });
  const flagFile = path.join(dir, 'flag'); fs.writeFileSync(flagFile, 'x');
  // warm up each helper once
  await lockH.withLock(async () => {}); const d0 = await ioctls.attach(img); await ioctls.detach(d0);
  await ms.mount(d0, mnt, 'ext4').catch(() => {});
  try { execFileSync('umount', [mnt], { stdio: 'ignore' }); } catch {}
  await setImmutable(flagFile, false, { exec: execFileExec, ioctls });
  const ro = { readOnly: (d) => isReadOnly(d) };
  for (let i = 0; i < N; i++) {
    await timed('lock+unlock helper', () => lockH.withLock(async () => {}));
    await timed('lock+unlock flock(1)', () => lockF.withLock(async () => {}));
    let dev;
    await timed('attach helper', async () => { dev = await attachLoop(execFileExec, img, undefined, { ...ro, ioctls }); });
    await timed('mount helper', async () => { const r = await ms.mount(dev, mnt, 'ext4'); if (!r?.ok) throw new Error(JSON.stringify(r)); });
    await timed('umount helper', async () => { const r = await ms.umount(mnt); if (!r?.ok) throw new Error(JSON.stringify(r)); });
    await timed('detach helper', () => detachLoop(execFileExec, dev, undefined, { ioctls }));
    await timed('attach losetup', async () => { dev = await attachLoop(execFileExec, img, undefined, ro); });
    await timed('mount mount(8)', async () => { const r = await execFileExec('mount', ['-t', 'ext4', dev, mnt]); if (r.exitCode) throw new Error(r.stderr); });
    await timed('umount umount(8)', async () => { const r = await execFileExec('umount', [mnt]); if (r.exitCode) throw new Error(r.stderr); });
    // With data (the dataset agent's loopback mounts: -o discard): mount(2)'s data string vs mount(8) -o.
    await timed('mount -o discard mount(8)', async () => { const r = await execFileExec('mount', ['-t', 'ext4', '-o', 'discard', dev, mnt]); if (r.exitCode) throw new Error(r.stderr); });
    await ms.umount(mnt);
    await timed('mount discard helper', async () => { const r = await ms.mount(dev, mnt, 'ext4', ['discard']); if (!r?.ok) throw new Error(JSON.stringify(r)); });
    await ms.umount(mnt);
    await timed('detach losetup', () => detachLoop(execFileExec, dev));
    await timed('immutable set+clear helper', async () => { await setImmutable(flagFile, true, { exec: execFileExec, ioctls }); await setImmutable(flagFile, false, { exec: execFileExec, ioctls }); });
    await timed('immutable set+clear chattr', async () => { await setImmutable(flagFile, true, { exec: execFileExec }); await setImmutable(flagFile, false, { exec: execFileExec }); });
  }
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(`N=${N}, node ${process.version}, ${os.cpus().length} cores, loadavg ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  for (const [k, v] of Object.entries(res)) console.log(`${k.padEnd(30)} median ${med(v).toFixed(2)} ms  p90 ${p90(v).toFixed(2)} ms`);
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
