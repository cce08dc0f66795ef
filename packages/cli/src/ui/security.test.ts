import { checkRequest } from './security';

const PORT = 4580;
const ok = { ok: true };

describe('checkRequest', () => {
  it('lets pages and the event stream load only under the loopback host names', () => {
    expect(
      checkRequest({ method: 'GET', host: '127.0.0.1:4580', origin: undefined, contentType: undefined }, PORT),
    ).toEqual(ok);
    expect(
      checkRequest({ method: 'GET', host: 'LOCALHOST:4580', origin: undefined, contentType: undefined }, PORT),
    ).toEqual(ok);
    expect(
      checkRequest({ method: 'GET', host: 'evil.example:4580', origin: undefined, contentType: undefined }, PORT),
    ).toMatchObject({ ok: false, status: 403, code: 'FORBIDDEN_HOST' });
    expect(
      checkRequest({ method: 'GET', host: '127.0.0.1:9999', origin: undefined, contentType: undefined }, PORT),
    ).toMatchObject({ ok: false, code: 'FORBIDDEN_HOST' });
    expect(
      checkRequest({ method: 'GET', host: undefined, origin: undefined, contentType: undefined }, PORT),
    ).toMatchObject({ ok: false, code: 'FORBIDDEN_HOST' });
  });

  it('accepts changes only from its own origin, as JSON', () => {
    const base = { host: '127.0.0.1:4580', contentType: 'application/json' };
    expect(checkRequest({ ...base, method: 'POST', origin: 'http://127.0.0.1:4580' }, PORT)).toEqual(ok);
    expect(checkRequest({ ...base, method: 'POST', origin: 'http://localhost:4580' }, PORT)).toEqual(ok);
    expect(
      checkRequest({ ...base, method: 'DELETE', origin: 'http://127.0.0.1:4580', contentType: undefined }, PORT),
    ).toEqual(ok);
    expect(checkRequest({ ...base, method: 'POST', origin: undefined }, PORT)).toMatchObject({
      ok: false,
      status: 403,
      code: 'FORBIDDEN_ORIGIN',
    });
    expect(checkRequest({ ...base, method: 'POST', origin: 'null' }, PORT)).toMatchObject({
      ok: false,
      code: 'FORBIDDEN_ORIGIN',
    });
    expect(checkRequest({ ...base, method: 'DELETE', origin: 'https://evil.example' }, PORT)).toMatchObject({
      ok: false,
      code: 'FORBIDDEN_ORIGIN',
    });
    expect(
      checkRequest({ ...base, method: 'POST', origin: 'http://127.0.0.1:4580', contentType: 'text/plain' }, PORT),
    ).toMatchObject({ ok: false, status: 415 });
    expect(
      checkRequest(
        { ...base, method: 'POST', origin: 'http://127.0.0.1:4580', contentType: 'application/x-www-form-urlencoded' },
        PORT,
      ),
    ).toMatchObject({ ok: false, status: 415 });
  });
});
