/**
 * Which containers (Docker mount IDs) use which volume on this host: the plugin's only
 * own state. Persisted atomically (write temp file, fsync, rename) after every change
 * so counts survive a plugin restart.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';

const MountFile = z.object({
  version: z.literal(1),
  volumes: z.record(z.string(), z.object({ name: z.string(), ids: z.array(z.string()) })),
});
type MountFile = z.infer<typeof MountFile>;

export interface MountEntry {
  datasetId: string;
  name: string;
  ids: readonly string[];
}

export class MountRegistry {
  private writes: Promise<void> = Promise.resolve();

  private constructor(
    private readonly file: string,
    private readonly volumes: Map<string, { name: string; ids: Set<string> }>,
  ) {}

  /** Load the registry; a missing file is an empty registry, a corrupt one an error. */
  static async load(file: string): Promise<MountRegistry> {
    let text: string | undefined;
    try {
      text = await fs.promises.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const volumes = new Map<string, { name: string; ids: Set<string> }>();
    if (text !== undefined) {
      const parsed = MountFile.safeParse(JSON.parse(text));
      if (!parsed.success) throw new Error(`${file} is not a valid mount registry: ${z.prettifyError(parsed.error)}`);
      for (const [datasetId, v] of Object.entries(parsed.data.volumes)) {
        if (v.ids.length > 0) volumes.set(datasetId, { name: v.name, ids: new Set(v.ids) });
      }
    }
    return new MountRegistry(file, volumes);
  }

  count(datasetId: string): number {
    return this.volumes.get(datasetId)?.ids.size ?? 0;
  }

  entries(): MountEntry[] {
    return [...this.volumes].map(([datasetId, v]) => ({ datasetId, name: v.name, ids: [...v.ids] }));
  }

  /** Dataset id of the volume with this name that has mount IDs here, if any. */
  findByName(name: string): string | undefined {
    for (const [datasetId, v] of this.volumes) if (v.name === name) return datasetId;
    return undefined;
  }

  async add(datasetId: string, name: string, id: string): Promise<number> {
    const v = this.volumes.get(datasetId) ?? { name, ids: new Set<string>() };
    v.ids.add(id);
    this.volumes.set(datasetId, v);
    await this.persist();
    return v.ids.size;
  }

  /** Forget one mount ID; returns how many remain for the dataset. */
  async remove(datasetId: string, id: string): Promise<number> {
    const v = this.volumes.get(datasetId);
    if (!v) return 0;
    v.ids.delete(id);
    if (v.ids.size === 0) this.volumes.delete(datasetId);
    await this.persist();
    return v.ids.size;
  }

  async drop(datasetId: string): Promise<void> {
    if (this.volumes.delete(datasetId)) await this.persist();
  }

  private persist(): Promise<void> {
    const snapshot: MountFile = {
      version: 1,
      volumes: Object.fromEntries([...this.volumes].map(([id, v]) => [id, { name: v.name, ids: [...v.ids].sort() }])),
    };
    // Chain writes so an older snapshot never lands after a newer one.
    this.writes = this.writes.catch(() => undefined).then(() => writeFileAtomic(this.file, JSON.stringify(snapshot, null, 2) + '\n'));
    return this.writes;
  }
}

export async function writeFileAtomic(file: string, text: string): Promise<void> {
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await fs.promises.open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.promises.rename(tmp, file);
}
