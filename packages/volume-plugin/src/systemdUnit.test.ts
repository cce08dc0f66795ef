import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_SOCKET } from './config';

const UNIT = path.join(__dirname, '..', 'systemd', 'flocker-docker-plugin.service');

/** section -> key -> values (systemd lets a key repeat and lists space-separated values). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = new Map();
      sections.set(header[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (current === undefined || eq < 0) throw new Error(`not a unit file line: ${line}`);
    const key = line.slice(0, eq);
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)]);
  }
  return sections;
}

describe('the shipped systemd unit', () => {
  const unit = parseUnit(fs.readFileSync(UNIT, 'utf8'));
  const get = (section: string, key: string): string[] => unit.get(section)?.get(key) ?? [];
  const words = (section: string, key: string): string[] => get(section, key).flatMap((v) => v.split(/\s+/));

  it('starts the plugin before Docker (a dockerd restoring plugin volumes without it stalls) and after the agent', () => {
    expect(words('Unit', 'Before')).toContain('docker.service');
    expect(words('Unit', 'After')).toContain('flocker-dataset-agent.service');
    expect(words('Install', 'WantedBy')).toContain('docker.service');
  });

  it('reports started only once the default socket exists, so docker.service really waits for it', () => {
    const post = get('Service', 'ExecStartPost').join(' ');
    expect(post).toContain(`[ -S ${DEFAULT_SOCKET} ]`);
  });

  it('runs the plugin with options it accepts', () => {
    const [exec] = get('Service', 'ExecStart');
    expect(exec).toMatch(/^\/usr\/bin\/flocker-docker-plugin /);
    const flags = (exec ?? '').split(/\s+/).filter((w) => w.startsWith('--'));
    expect(flags.length).toBeGreaterThan(0);
    const help = spawnSync(process.execPath, [path.join(__dirname, 'main.js'), '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    for (const flag of flags) expect(help.stdout).toContain(flag);
  });
});
