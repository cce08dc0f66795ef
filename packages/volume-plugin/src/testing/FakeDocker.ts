/** Test support: a dockerd the test controls (its containers, whether it answers, its comings and goings). */
import {
  DockerUnreachableError,
  type DockerContainer,
  type DockerFollowHandlers,
  type DockerView,
  type DockerVolume,
} from '../DockerView';

export class FakeDocker implements DockerView {
  list: DockerContainer[] = [];
  /** What GET /volumes answers (name and driver of each volume dockerd knows). */
  volumeList: DockerVolume[] = [];
  reachable = true;
  lists = 0;
  /** What inspect says of each container's State.FinishedAt (ms; 0 never ran); an absent one is unknown. */
  finished = new Map<string, number>();
  private handlers: DockerFollowHandlers | undefined;

  async containers(): Promise<DockerContainer[]> {
    this.lists++;
    if (!this.reachable) throw new DockerUnreachableError('connect ENOENT /var/run/docker.sock');
    return this.list;
  }

  async volumes(): Promise<DockerVolume[]> {
    if (!this.reachable) throw new DockerUnreachableError('connect ENOENT /var/run/docker.sock');
    return this.volumeList;
  }

  async finishedAt(id: string): Promise<number | undefined> {
    if (!this.reachable) throw new DockerUnreachableError('connect ENOENT /var/run/docker.sock');
    return this.finished.get(id);
  }

  follow(handlers: DockerFollowHandlers): { close(): void } {
    this.handlers = handlers;
    if (this.reachable) handlers.onConnect();
    return { close: () => (this.handlers = undefined) };
  }

  /** dockerd goes away (killed) ... */
  down(): void {
    this.reachable = false;
    this.handlers?.onDisconnect('event stream ended');
  }

  /** ... and comes back with these containers. */
  up(list: DockerContainer[]): void {
    this.list = list;
    this.reachable = true;
    this.handlers?.onConnect();
  }
}
