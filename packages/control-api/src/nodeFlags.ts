/**
 * V8 flags flocker-control runs with (they are in main.ts's #! line; the benchmark
 * starts the server with them too). V8 sizes the young generation from the machine's
 * memory: on a 24 GB host it grew to 128 MB, and the long-poll objects surviving in it
 * pushed the service's RSS past 400 MB with ~60 MB live. 16 MB semi-spaces keep it
 * near 300 MB at 10,000 datasets and 1,000 agents.
 */
export const CONTROL_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=16'];
