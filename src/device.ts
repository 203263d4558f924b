/** Where compression and verification run: `auto` picks the GPU when one is usable, else the CPU. */
export const DEVICES = ['cpu', 'gpu', 'auto'] as const;
export type Device = (typeof DEVICES)[number];
