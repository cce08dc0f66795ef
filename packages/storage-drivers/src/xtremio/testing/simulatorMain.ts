/**
 * The XtremIO simulator as its own process (tests start it with harness.ts):
 *   node simulatorMain.js <dataDir> <username> <password> [port]
 * prints "listening <port>" once it serves; with XIO_SIM_EXIT_WITH_STDIN=1, exits when its stdin ends (the
 * harness that started it is gone).
 */
import { startSimulator } from './simulator';

async function main(): Promise<void> {
  const [dataDir, username, password, port] = process.argv.slice(2);
  if (dataDir === undefined || username === undefined || password === undefined) {
    process.stderr.write('usage: simulatorMain.js <dataDir> <username> <password> [port]\n');
    process.exit(2);
  }
  const { port: bound } = await startSimulator({ dataDir, username, password }, Number(port ?? 0));
  // The harness holds our stdin open while it runs: its end (the harness exited, or was killed) ends us too.
  if (process.env['XIO_SIM_EXIT_WITH_STDIN'] === '1') {
    process.stdin.on('end', () => process.exit(0));
    process.stdin.resume();
  }
  process.stdout.write(`listening ${bound}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${String(e)}\n`);
  process.exit(1);
});
