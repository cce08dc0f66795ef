/**
 * Which containers (Docker mount IDs) use which volume on this host: the plugin's only
 * own state. Persisted atomically (write temp file, rename) after every change so counts
 * survive a plugin restart. No fsync: the IDs only matter while this boot's containers
 * exist, so a power loss makes them worthless anyway, and an fsync per Mount/Unmount
 * costs milliseconds on every `docker run`. Written synchronously: a write of this small
 * file takes ~0.2 ms, while the same as four thread-pool hops took 2-4 ms of Mount's
 * answer time when the host was busy starting the container.
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
  private constructor(
    private readonly file: string,
    private readonly volumes: Map<string, { name: string; ids: Set<string> }>,
  ) {}

  /**
   * Load the registry. A missing file is an empty registry; an unreadable one (say, torn
   * by a power loss) is moved aside to `<file>.corrupt` and reported through `onCorrupt`,
   * and the registry starts empty, since after a reboot no container holds a mount.
   */
  static async load(file: string, onCorrupt: (problem: string) => void = () => undefined): Promise<MountRegistry> {
    let text: string | undefined;
    try {
      text = await fs.promises.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const volumes = new Map<string, { name: string; ids: Set<string> }>();
    if (text !== undefined) {
      let doc: unknown;
      try {
        doc = JSON.parse(text);
      } catch {
        doc = undefined;
      }
      const parsed = MountFile.safeParse(doc);
      if (parsed.success) {
        for (const [datasetId, v] of Object.entries(parsed.data.volumes)) {
          volumes.set(datasetId, { name: v.name, ids: new Set(v.ids) });
        }
      } else {
        await fs.promises.rename(file, `${file}.corrupt`);
        onCorrupt(`${file} is not a valid mount registry (moved to ${file}.corrupt); starting with no mounts`);
      }
    }
    await fs.promises.mkdir(path.dirname(file), { recursive: true });
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

  /**
   * Forget one mount ID; returns how many remain for the dataset. An entry left with no
   * IDs stays (persisted) until `dropIfUnused`: it records "lease release pending", so a
   * crash before the release is finished on the next start.
   */
  async remove(datasetId: string, id: string): Promise<number> {
    const v = this.volumes.get(datasetId);
    if (!v) return 0;
    v.ids.delete(id);
    await this.persist();
    return v.ids.size;
  }

  /** Forget the dataset if no mount ID came back meanwhile. */
  async dropIfUnused(datasetId: string): Promise<void> {
    if (this.volumes.get(datasetId)?.ids.size === 0) await this.drop(datasetId);
  }

  async drop(datasetId: string): Promise<void> {
    if (this.volumes.delete(datasetId)) await this.persist();
  }

  private persist(): Promise<void> {
    const snapshot: MountFile = {
      version: 1,
      volumes: Object.fromEntries([...this.volumes].map(([id, v]) => [id, { name: v.name, ids: [...v.ids].sort() }])),
    };
    // Synchronous, so writes land in call order and an older snapshot never overwrites a newer one.
    try {
      writeFileAtomicSync(this.file, JSON.stringify(snapshot, null, 2) + '\n');
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }
}

/** Write a temp file and rename it over `file`; makes the directory if it went away. */
export function writeFileAtomicSync(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, text, { mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(tmp, text, { mode: 0o600 });
  }
  fs.renameSync(tmp, file);
}
