import { errorCode, errorMessage } from './errors';

describe('errorMessage', () => {
  it('gives an Error’s message and any other thrown value as a string', () => {
    expect(errorMessage(new TypeError('bad'))).toBe('bad');
    expect(errorMessage('plain')).toBe('plain');
    expect(errorMessage(42)).toBe('42');
    expect(errorMessage(undefined)).toBe('undefined');
  });
});

describe('errorCode', () => {
  it('gives a string code (ours or errno), else undefined', () => {
    expect(errorCode(Object.assign(new Error('x'), { code: 'ENOENT' }))).toBe('ENOENT');
    expect(errorCode({ code: 'VOLUME_ATTACHED' })).toBe('VOLUME_ATTACHED');
    expect(errorCode({ code: 14 })).toBeUndefined();
    expect(errorCode({ code: '' })).toBeUndefined();
    expect(errorCode(new Error('x'))).toBeUndefined();
    expect(errorCode(null)).toBeUndefined();
    expect(errorCode('ENOENT')).toBeUndefined();
  });
});
