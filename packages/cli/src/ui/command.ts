/** `flocker ui`: the web UI on a local port, talking to the control service as this user. */
import { errorMessage } from '@flocker/runtime';
import type { Argv } from 'yargs';
import type { FlockerClient } from '@flocker/api';
import { APP_DIR } from '@flocker/web-ui';
import { resolveConnection, type ConnectionArgs } from '../connection';
import { CliError, EXIT } from '../errors';
import { UiActions } from './actions';
import { ClusterFeed } from './ClusterFeed';
import { UiServer } from './UiServer';

export const DEFAULT_UI_PORT = 4580;

export interface UiArgs extends ConnectionArgs {
  port: number;
}

export function uiOptions<T>(y: Argv<T>) {
  return (
    y
      .option('port', { type: 'number', default: DEFAULT_UI_PORT, describe: 'Port on 127.0.0.1 (0 picks a free port)' })
      // A usage error (exit 2), not Node's RangeError from listen (review TN F9).
      .check((a) => {
        const port: unknown = a.port;
        if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535)
          throw new Error(`--port ${String(port)} is not a port: give 0-65535 (0 picks a free port)`);
        return true;
      })
      .example('$0 ui --port 8080', 'then open the address it prints (http://127.0.0.1:8080/?token=…)')
  );
}

export interface UiRunning {
  url: string;
  stop: () => Promise<void>;
}

/** Start the feed and the server; the caller decides how long they live. */
export async function startUi(
  client: FlockerClient,
  controlUrl: string,
  port: number,
  appDir = APP_DIR,
): Promise<UiRunning> {
  const feed = new ClusterFeed(client, { controlUrl });
  const server = new UiServer({ feed, actions: new UiActions(client, () => feed.latest()), appDir });
  const url = await server.listen(port);
  void feed.run();
  return {
    url,
    stop: async () => {
      feed.stop();
      await server.close();
    },
  };
}

/** Run until SIGINT/SIGTERM. Prints one JSON line on stdout ({"url": …}) for scripts, a sentence on stderr for people. */
export async function runUi(
  a: UiArgs,
  client: FlockerClient,
  out: (t: string) => void,
  err: (t: string) => void,
): Promise<void> {
  const controlUrl = resolveConnection(a).baseUrl;
  const ui = await startUi(client, controlUrl, a.port).catch((e: unknown) => {
    const inUse = e instanceof Error && 'code' in e && e.code === 'EADDRINUSE';
    throw new CliError(
      EXIT.FAILURE,
      inUse ? `port ${a.port} is in use: choose another with --port` : `cannot start the UI server: ${errorMessage(e)}`,
    );
  });
  out(JSON.stringify({ url: ui.url, control_url: controlUrl }));
  err(`Flocker UI for ${controlUrl} at ${ui.url} (Ctrl-C to stop)`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      // A long-poll in flight cannot be cancelled and would hold the process up to 25 s.
      void ui.stop().then(() => {
        resolve();
        process.exit(0);
      });
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
