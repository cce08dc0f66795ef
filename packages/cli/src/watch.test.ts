import { Coalescer, WatchPrinter } from './watch';

describe('WatchPrinter (--watch on list commands)', () => {
  it('prints the first list, then only changes, a blank line before each later table', () => {
    const out: string[] = [];
    const p = new WatchPrinter<{ n: string }>((t) => out.push(t), false);
    const render = (rows: readonly { n: string }[]) => rows.map((r) => r.n).join('\n');
    expect(p.show([{ n: 'a' }], render)).toBe(true);
    expect(p.show([{ n: 'a' }], render)).toBe(false);
    expect(p.show([{ n: 'a' }, { n: 'b' }], render)).toBe(true);
    expect(out).toEqual(['a', '\na\nb']);
  });

  it('with --json: one JSON line per change', () => {
    const out: string[] = [];
    const p = new WatchPrinter<number>((t) => out.push(t), true);
    p.show([1], () => 'table');
    p.show([1], () => 'table');
    p.show([1, 2], () => 'table');
    expect(out).toEqual(['[1]', '[1,2]']);
  });

  it("a key leaves out what moves without being a change (a node's last_seen)", () => {
    const out: string[] = [];
    type Node = { host: string; alive: boolean; last_seen: string };
    const p = new WatchPrinter<Node>(
      (t) => out.push(t),
      true,
      (rows) => rows.map(({ last_seen: _, ...r }) => r),
    );
    p.show([{ host: 'a', alive: true, last_seen: '1' }], () => '');
    p.show([{ host: 'a', alive: true, last_seen: '2' }], () => '');
    p.show([{ host: 'a', alive: false, last_seen: '2' }], () => '');
    expect(out.map((l) => (JSON.parse(l) as Node[])[0]!.alive)).toEqual([true, false]);
  });
});

describe('Coalescer', () => {
  it('runs one at a time and coalesces what arrives meanwhile into one run with the latest', async () => {
    const ran: number[] = [];
    let release: () => void = () => undefined;
    const c = new Coalescer<number>(async (n) => {
      ran.push(n);
      if (n === 1) await new Promise<void>((r) => (release = r));
    });
    c.push(1);
    c.push(2);
    c.push(3);
    release();
    await c.idle();
    expect(ran).toEqual([1, 3]);
  });

  it('an error is passed on and the next value still runs', async () => {
    const errors: unknown[] = [];
    const ran: number[] = [];
    const c = new Coalescer<number>(
      async (n) => {
        ran.push(n);
        if (n === 1) throw new Error('control service down');
      },
      (e) => errors.push(e),
    );
    c.push(1);
    await c.idle();
    c.push(2);
    await c.idle();
    expect(ran).toEqual([1, 2]);
    expect(errors).toHaveLength(1);
  });
});
