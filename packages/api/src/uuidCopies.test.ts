/**
 * The API's own patterns beside Uuid take exactly what it takes: canonicalId (opaque ids, lower-cased when UUIDs) and
 * volumeNames' UUID_SHAPED (a RegExp the CLI, the Docker plugin and the browser bundle test names with: an id or a
 * name). They stay patterns (a hot path; callers use .test), so this pins them to the one rule.
 */
import { canonicalId, Uuid } from './schemas';
import { UUID_SHAPED } from './volumeNames';
import { UUID_SPELLINGS as SPELLINGS } from './testing';

it.each(SPELLINGS)('%j: UUID_SHAPED and canonicalId agree with Uuid', (text) => {
  const uuid = Uuid.safeParse(text);
  expect(UUID_SHAPED.test(text)).toBe(uuid.success);
  expect(canonicalId(text)).toBe(uuid.success ? uuid.data : text);
});
