/**
 * The ScaleIO gateway simulator as its own process (tests only):
 *
 *   node dist/scaleio/simulator/main.js '<SimulatorConfig JSON>'
 *
 * Prints {"url": "http://127.0.0.1:<port>"} once listening. SIGTERM or SIGINT unmaps every volume
 * (loop devices detached, device links removed) and exits; volume files stay in dataDir.
 */
import type { AddressInfo } from 'node:net';
import { gatewayServer, GatewaySimulator, SimulatorConfigSchema } from './gateway';

async function main(): Promise<void> {
  const sim = new GatewaySimulator(SimulatorConfigSchema.parse(JSON.parse(process.argv[2] ?? '{}')));
  const server = gatewayServer(sim);
  await new Promise<void>((resolve) => server.listen(sim.config.port, sim.config.listen, resolve));
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ url: `http://${sim.config.listen}:${port}`, port })}\n`);
  const stop = () => {
    server.close();
    server.closeAllConnections();
    void sim.shutdown().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

void main().catch((e: unknown) => {
  process.stderr.write(`scaleio simulator: ${String(e)}\n`);
  process.exit(1);
});
