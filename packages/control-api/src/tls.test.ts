import { chooseTls } from './tls';

describe('chooseTls', () => {
  const all = (dir: string) =>
    new Set([`${dir}/cluster.crt`, `${dir}/control-service.crt`, `${dir}/control-service.key`]);
  const existsIn = (files: Set<string>) => (p: string) => files.has(p);

  it('uses /etc/flocker when it holds the files', () => {
    expect(chooseTls({}, existsIn(all('/etc/flocker')))).toEqual({
      mode: 'https',
      files: {
        ca: '/etc/flocker/cluster.crt',
        cert: '/etc/flocker/control-service.crt',
        key: '/etc/flocker/control-service.key',
      },
    });
  });

  it('uses --tls-dir', () => {
    expect(chooseTls({ tlsDir: '/x' }, existsIn(all('/x')))).toMatchObject({
      mode: 'https',
      files: { ca: '/x/cluster.crt' },
    });
  });

  it('never falls back to plain HTTP silently', () => {
    expect(() => chooseTls({}, () => false)).toThrow(
      expect.objectContaining({ code: 'TLS_FILES_MISSING', message: expect.stringContaining('--insecure-http') }),
    );
    const partial = new Set(['/x/cluster.crt']);
    expect(() => chooseTls({ tlsDir: '/x' }, existsIn(partial))).toThrow(
      expect.objectContaining({
        code: 'TLS_FILES_MISSING',
        message: expect.stringContaining('/x/control-service.key'),
      }),
    );
  });

  it('explicit files win and must come together', () => {
    expect(chooseTls({ cert: 'c', key: 'k', ca: 'a' }, () => false)).toEqual({
      mode: 'https',
      files: { cert: 'c', key: 'k', ca: 'a' },
    });
    expect(() => chooseTls({ cert: 'c', key: 'k' })).toThrow(expect.objectContaining({ code: 'TLS_OPTIONS_CONFLICT' }));
  });

  it('--insecure-http is explicit and exclusive', () => {
    expect(chooseTls({ insecureHttp: true }, existsIn(all('/etc/flocker')))).toEqual({ mode: 'http' });
    expect(() => chooseTls({ insecureHttp: true, tlsDir: '/x' })).toThrow(
      expect.objectContaining({ code: 'TLS_OPTIONS_CONFLICT' }),
    );
  });
});
