/** Moved to @flocker/runtime (one primitive with the loopback driver's sysfs scans); kept for this package's importers. */
export { FreshRead } from '@flocker/runtime';
