import { formatSize, parseSize, SizeError } from './sizes';

describe('sizes', () => {
  it.each([
    ['1024', 1024],
    ['10G', 10 * 1024 ** 3],
    ['10GB', 10 * 1024 ** 3],
    ['10gib', 10 * 1024 ** 3],
    ['512MiB', 512 * 1024 ** 2],
    ['100KiB', 100 * 1024],
    ['1.5GiB', 1.5 * 1024 ** 3],
    [' 2 T ', 2 * 1024 ** 4],
  ])('parses %p', (text, bytes) => expect(parseSize(text)).toBe(bytes));

  it.each(['', 'ten', '-1G', '10X', '1e9', '10 G B', '99999999999999999999P'])('rejects %p', (text) => {
    expect(() => parseSize(text)).toThrow(SizeError);
  });

  it('enforces a minimum', () => {
    expect(() => parseSize('1M', 64 * 1024 ** 2)).toThrow(/too small: at least 64 MiB/);
  });

  it.each([
    [0, '0 B'],
    [1000, '1000 B'],
    [1024, '1 KiB'],
    [10 * 1024 ** 3, '10 GiB'],
    [1.5 * 1024 ** 3, '1.5 GiB'],
    [75 * 1024 ** 3, '75 GiB'],
  ])('formats %p as %p', (bytes, text) => expect(formatSize(bytes)).toBe(text));

  it('round-trips formatted whole units', () => {
    for (const b of [1024, 64 * 1024 ** 2, 10 * 1024 ** 3, 2 * 1024 ** 5])
      expect(parseSize(formatSize(b).replace(' ', ''))).toBe(b);
  });

  it('knows petabytes: a size beyond what a number holds exactly is too large, not "not understood"', () => {
    expect(parseSize('1P')).toBe(1024 ** 5);
    expect(parseSize('2PiB')).toBe(2 * 1024 ** 5);
    expect(() => parseSize('100P')).toThrow(/too large/);
  });

  it('says how large a size may be, and knows exabytes (always too large) rather than "not understood"', () => {
    expect(() => parseSize('100P')).toThrow('size "100P" is too large: at most 8 PiB.');
    expect(() => parseSize('99999999999999999999999')).toThrow(/too large: at most 8 PiB/);
    expect(() => parseSize('8E')).toThrow('size "8E" is too large: at most 8 PiB.');
    expect(() => parseSize('1EiB')).toThrow(/too large/);
  });
});
