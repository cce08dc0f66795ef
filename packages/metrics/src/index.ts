// Prometheus metrics and health endpoints shared by every Flocker process.
export {};
