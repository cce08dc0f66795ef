/** Timing and retry primitives shared by every Flocker process (see README.md). */
export {};
