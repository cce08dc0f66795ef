/** Test support for the mover tests on memoryEngine(): a move of MOVE_ID at its size (1000). */
import { moveLocalDataset, type LocalMoveOptions, type MoveResult } from './LocalMover';
import { MOVE_ID } from './moverTestSupport';

/** moveLocalDataset of MOVE_ID, size 1000, with the given engine, target and options. */
export function moveTestDataset(o: Omit<LocalMoveOptions, 'datasetId' | 'size'>): Promise<MoveResult> {
  return moveLocalDataset({ datasetId: MOVE_ID, size: 1000, ...o });
}
