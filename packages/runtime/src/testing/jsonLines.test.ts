import { jsonLines, type LineSchema } from './jsonLines';

/** Objects with a string `message` (a schema by hand: this package depends on nothing). */
const Message: LineSchema<{ message: string }> = {
  safeParse: (v) =>
    typeof v === 'object' && v !== null && typeof (v as { message?: unknown }).message === 'string'
      ? { success: true, data: v as { message: string } }
      : { success: false },
};

describe('jsonLines: the objects of a JSON-lines log that parse as the schema', () => {
  const log = [
    '{"message":"a","t":"1"}',
    'not json',
    '{"message":',
    '{"level":"info"}',
    '["message"]',
    '"message"',
    '  {"message":"b"}',
    '',
    '{"message":"plugin call","call":"/VolumeDriver.Create"}',
  ].join('\n');

  it('keeps them in order, skipping lines that are not JSON, not objects or of another shape', () => {
    expect([...jsonLines(log, Message)].map((l) => l.message)).toEqual(['a', 'b', 'plugin call']);
  });

  it('parses only the lines holding `contains`', () => {
    expect([...jsonLines(log, Message, '"plugin call"')].map((l) => l.message)).toEqual(['plugin call']);
    expect([...jsonLines('', Message)]).toEqual([]);
  });
});
