// Splits test files into lanes (Jest's --shard=i/n, scripts/jest-sequencer.js): scripts/test.sh runs the e2e files as
// two jest processes at once, each --runInBand. Most e2e files spend their time waiting (fault-detection windows,
// timeouts, daemons starting), so two lanes on two cores take ~half the wall time of one.
//
// Longest processing time first: the units (a file, or a group of files that must share a lane) go, longest first, each
// to the lane with the least known seconds so far. Seconds come from e2e/durations.json (per file basename; a file not
// there counts as its defaultSeconds). Both lanes compute the same split from the same list of files and the same table,
// so they run disjoint sets that together are every file.
//
// Refresh the table from a run's JSON results (jest --json --outputFile=<file>, one file per lane; a file not in the
// results keeps its old seconds):
//   node scripts/jest-lanes.js durations e2e-1.json e2e-2.json > e2e/durations.new && mv e2e/durations.new e2e/durations.json
'use strict';
const fs = require('fs');
const path = require('path');

/**
 * Assigns items ({ id, seconds, group? }) to laneCount lanes; items with the same group go to the same lane (as one
 * unit, its seconds the sum). Deterministic: ties go to the longer unit's first id in order, then the lowest lane.
 * Returns { lanes: id[][], seconds: number[] }.
 */
function assignLanes(items, laneCount) {
  if (!Number.isInteger(laneCount) || laneCount < 1) throw new RangeError(`laneCount must be >= 1, got ${laneCount}`);
  const units = new Map();
  for (const item of items) {
    const key = item.group === undefined ? `file:${item.id}` : `group:${item.group}`;
    const unit = units.get(key) ?? { ids: [], seconds: 0 };
    unit.ids.push(item.id);
    unit.seconds += item.seconds;
    units.set(key, unit);
  }
  const order = [...units.values()]
    .map((u) => ({ ids: [...u.ids].sort(), seconds: u.seconds }))
    .sort((a, b) => b.seconds - a.seconds || (a.ids[0] < b.ids[0] ? -1 : a.ids[0] > b.ids[0] ? 1 : 0));
  const lanes = Array.from({ length: laneCount }, () => []);
  const seconds = Array.from({ length: laneCount }, () => 0);
  for (const unit of order) {
    let lane = 0;
    for (let i = 1; i < laneCount; i++) if (seconds[i] < seconds[lane]) lane = i;
    lanes[lane].push(...unit.ids);
    seconds[lane] += unit.seconds;
  }
  return { lanes, seconds };
}

/** The seconds of a file (basename) in a durations table ({ defaultSeconds, seconds: { [basename]: s } }). */
function secondsOf(table, file) {
  const s = table.seconds?.[path.basename(file)];
  return typeof s === 'number' && s >= 0 ? s : (table.defaultSeconds ?? 30);
}

/**
 * A new durations table: the old one with the seconds of every suite in the given Jest JSON results (endTime -
 * startTime, by basename, rounded to 0.1 s) put in.
 */
function durationsFrom(oldTable, results) {
  const seconds = { ...(oldTable.seconds ?? {}) };
  for (const r of results) {
    for (const t of r.testResults ?? []) {
      if (!t.startTime || !t.endTime) continue;
      seconds[path.basename(t.name)] = Math.round((t.endTime - t.startTime) / 100) / 10;
    }
  }
  const sorted = Object.fromEntries(
    Object.keys(seconds)
      .sort()
      .map((k) => [k, seconds[k]]),
  );
  return { ...oldTable, seconds: sorted };
}

const TABLE = path.join(__dirname, '..', 'e2e', 'durations.json');

function readTable(file = TABLE) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return { defaultSeconds: 30, seconds: {} };
  }
}

module.exports = { assignLanes, secondsOf, durationsFrom, readTable, TABLE };

if (require.main === module) {
  const [cmd, ...files] = process.argv.slice(2);
  if (cmd !== 'durations' || files.length === 0) {
    console.error('usage: node scripts/jest-lanes.js durations <jest --json result file>... > e2e/durations.json');
    process.exit(2);
  }
  const results = files.map((f) => JSON.parse(fs.readFileSync(f, 'utf8')));
  process.stdout.write(JSON.stringify(durationsFrom(readTable(), results), null, 2) + '\n');
}
